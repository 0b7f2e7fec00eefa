"""Tests of the image_resize Lambda: config, thumbnails (pure Pillow) and the SQS handler (moto)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError, EndpointConnectionError
from image_resize import handler
from image_resize.config import ConfigError, Settings
from image_resize.thumbnails import (
    ImageTooLarge,
    InvalidImage,
    RejectedImage,
    Thumbnail,
    UnsupportedImage,
    make_thumbnails,
)
from image_resize_support import (
    DESTINATION_BUCKET,
    METRICS_NAMESPACE,
    SIZES,
    SOURCE_BUCKET,
    TEST_EVENT_BODY,
    encode,
    exif_with_gps,
    gradient,
    png_header_only,
    s3_record,
)
from PIL import Image, ImageCms

from tests.support.aws import REGION
from tests.support.idempotency import IDEMPOTENCY_TABLE, create_idempotency_table

VALID_ENV = {"DESTINATION_BUCKET": "conveyor-thumbnails", "THUMBNAIL_SIZES": "128,512"}


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def thumbnail_key(key: str, size: int, extension: str) -> str:
    return f"thumbnails/{size}/{key}.{extension}"


def raising(error: Exception) -> Callable[..., Any]:
    """A stand-in for a client method that fails with ``error``."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail


# ==========================================================================================
# config.py


class TestSettings:
    def test_defaults_apply_when_only_required_variables_are_set(self) -> None:
        settings = Settings.from_env(VALID_ENV)

        assert settings == Settings(
            destination_bucket="conveyor-thumbnails",
            thumbnail_sizes=(128, 512),
            output_prefix="thumbnails/",
            max_source_bytes=26_214_400,
            max_image_pixels=40_000_000,
            dead_letter_queue_url=None,
        )

    def test_every_variable_is_read(self) -> None:
        env = {
            **VALID_ENV,
            "OUTPUT_PREFIX": "thumbs/",
            "MAX_SOURCE_BYTES": "1000",
            "MAX_IMAGE_PIXELS": "2000",
            "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        }

        settings = Settings.from_env(env)

        assert (settings.output_prefix, settings.max_source_bytes) == ("thumbs/", 1000)
        assert settings.max_image_pixels == 2000
        assert settings.dead_letter_queue_url == env["DEAD_LETTER_QUEUE_URL"]

    def test_thumbnail_sizes_are_deduplicated_and_sorted(self) -> None:
        settings = Settings.from_env({**VALID_ENV, "THUMBNAIL_SIZES": " 512, 128,512 ,16,4096"})

        assert settings.thumbnail_sizes == (16, 128, 512, 4096)

    def test_empty_dead_letter_queue_url_means_none(self) -> None:
        settings = Settings.from_env({**VALID_ENV, "DEAD_LETTER_QUEUE_URL": " "})

        assert settings.dead_letter_queue_url is None

    def test_settings_are_immutable(self) -> None:
        settings = Settings.from_env(VALID_ENV)

        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.destination_bucket = "other"  # type: ignore[misc]

    @pytest.mark.parametrize("variable", ["DESTINATION_BUCKET", "THUMBNAIL_SIZES"])
    @pytest.mark.parametrize("value", [None, "", "   "])
    def test_missing_required_variable_is_a_config_error_naming_it(
        self, variable: str, value: str | None
    ) -> None:
        env = dict(VALID_ENV)
        if value is None:
            del env[variable]
        else:
            env[variable] = value

        with pytest.raises(ConfigError, match=rf"^{variable} is required") as raised:
            Settings.from_env(env)
        assert raised.value.variable == variable
        assert isinstance(raised.value, ValueError)

    @pytest.mark.parametrize(
        "value",
        ["s3://conveyor-thumbnails", "arn:aws:s3:::conveyor-thumbnails", "Uppercase", "ab"],
    )
    def test_destination_bucket_must_be_a_bucket_name(self, value: str) -> None:
        with pytest.raises(ConfigError, match=r"^DESTINATION_BUCKET must be a bucket name"):
            Settings.from_env({**VALID_ENV, "DESTINATION_BUCKET": value})

    @pytest.mark.parametrize(
        "value", ["abc", "128,,512", "128,", "12.5", "-128", "0x80", "1_000", "128;512"]
    )
    def test_thumbnail_sizes_must_be_comma_separated_integers(self, value: str) -> None:
        with pytest.raises(ConfigError, match=r"^THUMBNAIL_SIZES must be comma-separated"):
            Settings.from_env({**VALID_ENV, "THUMBNAIL_SIZES": value})

    @pytest.mark.parametrize("value", ["0", "15", "4097", "128,100000"])
    def test_thumbnail_sizes_must_be_between_16_and_4096(self, value: str) -> None:
        with pytest.raises(
            ConfigError, match=r"^THUMBNAIL_SIZES sizes must be between 16 and 4096"
        ):
            Settings.from_env({**VALID_ENV, "THUMBNAIL_SIZES": value})

    @pytest.mark.parametrize("variable", ["MAX_SOURCE_BYTES", "MAX_IMAGE_PIXELS"])
    @pytest.mark.parametrize("value", ["0", "-1", "abc", "1e6", "25MiB"])
    def test_limits_must_be_positive_integers(self, variable: str, value: str) -> None:
        with pytest.raises(ConfigError, match=rf"^{variable} must be a positive integer"):
            Settings.from_env({**VALID_ENV, variable: value})

    @pytest.mark.parametrize(
        "value", ["image-resize-dlq", "arn:aws:sqs:us-east-1:1:dlq", "https://"]
    )
    def test_dead_letter_queue_url_must_be_a_queue_url(self, value: str) -> None:
        with pytest.raises(ConfigError, match=r"^DEAD_LETTER_QUEUE_URL must be an SQS queue URL"):
            Settings.from_env({**VALID_ENV, "DEAD_LETTER_QUEUE_URL": value})


# ==========================================================================================
# thumbnails.py (no AWS)


class TestMakeThumbnails:
    def test_one_thumbnail_per_size_in_ascending_order(self, jpeg_1600x900: bytes) -> None:
        thumbnails = make_thumbnails(jpeg_1600x900, [512, 128, 512], max_pixels=40_000_000)

        assert [t.size for t in thumbnails] == [128, 512]
        assert all(isinstance(t, Thumbnail) for t in thumbnails)
        size, data, content_type, extension, width, height = thumbnails[0]
        assert (size, content_type, extension, width, height) == (128, "image/jpeg", "jpg", 128, 72)
        assert opened(data).size == (128, 72)

    @pytest.mark.parametrize(
        ("image_format", "content_type", "extension"),
        [
            ("JPEG", "image/jpeg", "jpg"),
            ("PNG", "image/png", "png"),
            ("WEBP", "image/webp", "webp"),
        ],
    )
    def test_output_format_is_the_input_format(
        self, image_format: str, content_type: str, extension: str
    ) -> None:
        data = encode(gradient((300, 200)), image_format)

        [thumbnail] = make_thumbnails(data, [64], max_pixels=10**6)

        assert (thumbnail.content_type, thumbnail.extension) == (content_type, extension)
        assert opened(thumbnail.data).format == image_format

    def test_portrait_image_fits_the_box_by_its_height(self) -> None:
        data = encode(gradient((900, 1600)), "PNG")

        [thumbnail] = make_thumbnails(data, [128], max_pixels=10**7)

        assert (thumbnail.width, thumbnail.height) == (72, 128)

    def test_image_smaller_than_the_box_is_not_upscaled(self, jpeg_small_100x50: bytes) -> None:
        thumbnails = make_thumbnails(jpeg_small_100x50, [128, 512], max_pixels=10**7)

        assert [(t.width, t.height) for t in thumbnails] == [(100, 50), (100, 50)]

    def test_exif_orientation_is_applied(self, jpeg_rotated_exif: bytes) -> None:
        [thumbnail] = make_thumbnails(jpeg_rotated_exif, [128], max_pixels=10**7)

        image = opened(thumbnail.data)
        assert image.size == (64, 128)
        red, _, blue = image.getpixel((32, 10))
        assert red > 200, "top must be the stored left half (red)"
        assert blue < 60
        red, _, blue = image.getpixel((32, 118))
        assert blue > 200, "bottom must be the stored right half (blue)"
        assert red < 60
        assert image.getexif().get(0x0112) is None

    @pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
    def test_exif_gps_and_xmp_are_stripped(self, image_format: str) -> None:
        xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
        data = encode(gradient((300, 200)), image_format, exif=exif_with_gps(), xmp=xmp)
        assert opened(data).getexif(), "precondition: the source has EXIF"

        [thumbnail] = make_thumbnails(data, [64], max_pixels=10**6)

        image = opened(thumbnail.data)
        assert dict(image.getexif()) == {}
        assert "exif" not in image.info
        assert "xmp" not in image.info

    def test_icc_colour_profile_is_kept(self) -> None:
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        data = encode(gradient((300, 200)), "JPEG", icc_profile=profile)

        [thumbnail] = make_thumbnails(data, [64], max_pixels=10**6)

        assert opened(thumbnail.data).info.get("icc_profile") == profile

    def test_png_alpha_is_kept(self, png_rgba_1600x900: bytes) -> None:
        [thumbnail] = make_thumbnails(png_rgba_1600x900, [128], max_pixels=10**7)

        image = opened(thumbnail.data)
        assert image.mode == "RGBA"
        assert image.getpixel((5, 36))[3] == 0  # transparent left half
        assert image.getpixel((122, 36))[3] == 255  # opaque right half

    def test_palette_png_with_transparency_becomes_rgba(self) -> None:
        palette_image = gradient((200, 100)).convert("P")
        data = encode(palette_image, "PNG", transparency=0)

        [thumbnail] = make_thumbnails(data, [64], max_pixels=10**6)

        assert opened(thumbnail.data).mode == "RGBA"

    def test_cmyk_jpeg_becomes_rgb_jpeg(self) -> None:
        data = encode(Image.new("CMYK", (200, 100), (0, 255, 255, 0)), "JPEG")

        [thumbnail] = make_thumbnails(data, [64], max_pixels=10**6)

        image = opened(thumbnail.data)
        assert (image.format, image.mode) == ("JPEG", "RGB")
        assert image.getpixel((10, 10)) == pytest.approx((255, 0, 0), abs=40)

    def test_sixteen_bit_greyscale_png_is_scaled_to_eight_bits(self) -> None:
        data = encode(Image.new("I;16", (400, 200), 40_000), "PNG")

        [thumbnail] = make_thumbnails(data, [64], max_pixels=10**6)

        image = opened(thumbnail.data)
        assert image.mode == "L"
        assert image.getpixel((5, 5)) == pytest.approx(40_000 / 257, abs=1)

    def test_animated_webp_gives_its_first_frame(self, animated_webp: bytes) -> None:
        [thumbnail] = make_thumbnails(animated_webp, [64], max_pixels=10**6)

        image = Image.open(io.BytesIO(thumbnail.data))
        assert getattr(image, "n_frames", 1) == 1
        assert image.convert("RGB").getpixel((10, 10)) == pytest.approx((255, 0, 0), abs=40)

    def test_multi_picture_jpeg_is_treated_as_jpeg(self) -> None:
        first, second = gradient((300, 200)), Image.new("RGB", (300, 200), "blue")
        data = encode(first, "MPO", save_all=True, append_images=[second])
        assert Image.open(io.BytesIO(data)).format == "MPO", "precondition"

        [thumbnail] = make_thumbnails(data, [64], max_pixels=10**6)

        assert (thumbnail.content_type, opened(thumbnail.data).format) == ("image/jpeg", "JPEG")

    def test_zero_bytes_is_invalid(self) -> None:
        with pytest.raises(InvalidImage) as raised:
            make_thumbnails(b"", [64], max_pixels=10**6)
        assert raised.value.reason == "empty"

    def test_text_is_invalid(self) -> None:
        with pytest.raises(InvalidImage) as raised:
            make_thumbnails(b"definitely not a picture\n" * 10, [64], max_pixels=10**6)
        assert raised.value.reason == "not_an_image"

    def test_truncated_jpeg_is_invalid(self, truncated_jpeg: bytes) -> None:
        with pytest.raises(InvalidImage) as raised:
            make_thumbnails(truncated_jpeg, [64], max_pixels=10**7)
        assert raised.value.reason == "corrupt"

    def test_png_with_a_broken_body_is_invalid(self) -> None:
        with pytest.raises(InvalidImage):
            make_thumbnails(png_header_only(100, 100), [64], max_pixels=10**6)

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(encode(gradient((60, 40)), "GIF"), id="gif"),
            pytest.param(encode(gradient((60, 40)), "BMP"), id="bmp"),
            pytest.param(encode(gradient((60, 40)), "TIFF"), id="tiff"),
            pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", id="heic"),
        ],
    )
    def test_other_image_formats_are_unsupported(self, data: bytes) -> None:
        with pytest.raises(UnsupportedImage) as raised:
            make_thumbnails(data, [64], max_pixels=10**6)
        assert raised.value.reason == "unsupported_format"

    def test_more_pixels_than_allowed_is_too_large(self, jpeg_1600x900: bytes) -> None:
        with pytest.raises(ImageTooLarge, match="1600x900") as raised:
            make_thumbnails(jpeg_1600x900, [64], max_pixels=1600 * 900 - 1)
        assert raised.value.reason == "too_many_pixels"

    def test_image_bomb_header_is_too_large_before_any_decoding(
        self, image_bomb_png: bytes
    ) -> None:
        assert len(image_bomb_png) < 200  # 50000 x 50000 claimed by a tiny file

        with pytest.raises(ImageTooLarge):
            make_thumbnails(image_bomb_png, [64], max_pixels=10**12)  # Pillow's own guard

        with pytest.raises(ImageTooLarge):
            make_thumbnails(png_header_only(8000, 8000), [64], max_pixels=40_000_000)

    def test_every_rejection_is_a_rejected_image_with_a_reason(self) -> None:
        for error in (InvalidImage("x"), UnsupportedImage("x"), ImageTooLarge("x")):
            assert isinstance(error, RejectedImage)
            assert error.reason in {"invalid_image", "unsupported_format", "too_large"}


# ==========================================================================================
# handler.py: success


def test_jpeg_upload_writes_a_thumbnail_for_every_size(
    aws, notification_for, make_sqs_event, invoke, emitted_metrics, jpeg_1600x900
) -> None:
    uploaded = aws.put("photos/cat.jpg", jpeg_1600x900)

    response = invoke(make_sqs_event(notification_for(uploaded)))

    assert response == {"batchItemFailures": []}
    written = aws.thumbnails()
    assert sorted(written) == [thumbnail_key("photos/cat", size, "jpg") for size in SIZES]
    assert opened(written["thumbnails/128/photos/cat.jpg"]).size == (128, 72)  # 1600x900 ratio
    assert opened(written["thumbnails/512/photos/cat.jpg"]).size == (512, 288)
    assert emitted_metrics() == {"ThumbnailsWritten": 2, "ImagesProcessed": 1}


def test_thumbnail_objects_carry_content_type_and_source_metadata(
    aws, notification_for, make_sqs_event, invoke, jpeg_1600x900
) -> None:
    uploaded = aws.put("photos/cat.jpg", jpeg_1600x900)

    invoke(make_sqs_event(notification_for(uploaded)))

    head = aws.s3.head_object(Bucket=DESTINATION_BUCKET, Key="thumbnails/128/photos/cat.jpg")
    assert head["ContentType"] == "image/jpeg"
    assert head["Metadata"] == {
        "source-bucket": SOURCE_BUCKET,
        "source-key": "photos/cat.jpg",
        "source-etag": uploaded["etag"],
    }


def test_png_with_alpha_gives_png_thumbnails_with_alpha(
    aws, notification_for, make_sqs_event, invoke, png_rgba_1600x900
) -> None:
    uploaded = aws.put("logo.png", png_rgba_1600x900)

    invoke(make_sqs_event(notification_for(uploaded)))

    written = aws.thumbnails()
    assert sorted(written) == [thumbnail_key("logo", size, "png") for size in SIZES]
    image = opened(written["thumbnails/128/logo.png"])
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (128, 72))
    head = aws.s3.head_object(Bucket=DESTINATION_BUCKET, Key="thumbnails/128/logo.png")
    assert head["ContentType"] == "image/png"


def test_webp_gives_webp_thumbnails(
    aws, notification_for, make_sqs_event, invoke, webp_1600x900
) -> None:
    uploaded = aws.put("banner.webp", webp_1600x900)

    invoke(make_sqs_event(notification_for(uploaded)))

    written = aws.thumbnails()
    assert sorted(written) == [thumbnail_key("banner", size, "webp") for size in SIZES]
    assert opened(written["thumbnails/512/banner.webp"]).format == "WEBP"
    head = aws.s3.head_object(Bucket=DESTINATION_BUCKET, Key="thumbnails/512/banner.webp")
    assert head["ContentType"] == "image/webp"


def test_format_comes_from_the_content_not_the_extension(
    aws, notification_for, make_sqs_event, invoke, png_rgba_1600x900
) -> None:
    uploaded = aws.put("mislabelled.jpg", png_rgba_1600x900)

    invoke(make_sqs_event(notification_for(uploaded)))

    assert sorted(aws.thumbnails()) == [thumbnail_key("mislabelled", s, "png") for s in SIZES]


def test_small_image_is_not_upscaled(
    aws, notification_for, make_sqs_event, invoke, jpeg_small_100x50
) -> None:
    uploaded = aws.put("tiny.jpg", jpeg_small_100x50)

    invoke(make_sqs_event(notification_for(uploaded)))

    sizes = {key: opened(data).size for key, data in aws.thumbnails().items()}
    assert sizes == {thumbnail_key("tiny", s, "jpg"): (100, 50) for s in SIZES}


def test_exif_orientation_is_applied(
    aws, notification_for, make_sqs_event, invoke, jpeg_rotated_exif
) -> None:
    uploaded = aws.put("phone.jpg", jpeg_rotated_exif)

    invoke(make_sqs_event(notification_for(uploaded)))

    image = opened(aws.thumbnails()["thumbnails/128/phone.jpg"])
    assert image.size == (64, 128)  # stored landscape, displayed portrait
    assert image.getpixel((32, 5))[0] > 200  # red on top


def test_exif_gps_is_stripped_from_thumbnails(
    aws, notification_for, make_sqs_event, invoke, jpeg_1600x900
) -> None:
    assert opened(jpeg_1600x900).getexif().get(0x8825), "precondition: the upload has GPS"
    uploaded = aws.put("where.jpg", jpeg_1600x900)

    invoke(make_sqs_event(notification_for(uploaded)))

    for data in aws.thumbnails().values():
        assert dict(opened(data).getexif()) == {}


def test_animated_webp_gives_single_frame_thumbnails(
    aws, notification_for, make_sqs_event, invoke, animated_webp
) -> None:
    uploaded = aws.put("anim.webp", animated_webp)

    invoke(make_sqs_event(notification_for(uploaded)))

    image = Image.open(io.BytesIO(aws.thumbnails()["thumbnails/128/anim.webp"]))
    assert getattr(image, "n_frames", 1) == 1
    assert image.size == (128, 64)


def test_redelivery_overwrites_the_same_keys(
    aws, notification_for, make_sqs_event, invoke, emitted_metrics, jpeg_1600x900
) -> None:
    uploaded = aws.put("photos/cat.jpg", jpeg_1600x900)
    event = make_sqs_event(notification_for(uploaded))

    invoke(event)
    first = aws.thumbnails()
    invoke(event)  # SQS is at-least-once

    assert sorted(aws.thumbnails()) == sorted(first)
    assert len(first) == len(SIZES)
    assert emitted_metrics()["ImagesProcessed"] == 2


def test_output_prefix_is_configurable(
    aws, notification_for, make_sqs_event, invoke, monkeypatch, jpeg_small_100x50
) -> None:
    monkeypatch.setenv("OUTPUT_PREFIX", "derived/thumbs-")
    uploaded = aws.put("a/b.c/photo.final.jpeg", jpeg_small_100x50)

    invoke(make_sqs_event(notification_for(uploaded)))

    assert sorted(aws.thumbnails()) == [
        f"derived/thumbs-{size}/a/b.c/photo.final.jpg" for size in SIZES
    ]


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("holiday photos/my photo.jpg", "holiday+photos/my+photo.jpg"),
        ("c++/a+b.jpg", "c%2B%2B/a%2Bb.jpg"),
        ("写真/été 東京.jpg", "%E5%86%99%E7%9C%9F/%C3%A9t%C3%A9+%E6%9D%B1%E4%BA%AC.jpg"),
        ("deep/er/path/x.jpg", "deep%2Fer%2Fpath%2Fx.jpg"),
        ("100% & (1) = ok?.jpg", "100%25+%26+%281%29+%3D+ok%3F.jpg"),
    ],
    ids=["spaces", "literal-plus", "unicode", "encoded-slashes", "reserved-characters"],
)
def test_url_encoded_keys_are_decoded(
    aws, make_s3_body, make_sqs_event, invoke, jpeg_small_100x50, key, encoded
) -> None:
    aws.put(key, jpeg_small_100x50)
    body = make_s3_body(encoded, size=len(jpeg_small_100x50), etag=None, encode=False)

    response = invoke(make_sqs_event(body))

    assert response == {"batchItemFailures": []}
    stem = key.rsplit(".", 1)[0]
    assert sorted(aws.thumbnails()) == [thumbnail_key(stem, size, "jpg") for size in SIZES]
    head = aws.s3.head_object(Bucket=DESTINATION_BUCKET, Key=thumbnail_key(stem, 128, "jpg"))
    assert head["Metadata"]["source-key"].isascii()


def test_every_record_of_a_multi_record_body_is_processed(
    aws, make_sqs_event, invoke, emitted_metrics, jpeg_small_100x50, webp_1600x900
) -> None:
    first = aws.put("one.jpg", jpeg_small_100x50)
    second = aws.put("two.webp", webp_1600x900)
    body = {
        "Records": [
            s3_record(first["key"], size=first["size"], etag=first["etag"]),
            s3_record(second["key"], size=second["size"], etag=second["etag"]),
        ]
    }

    response = invoke(make_sqs_event(body))

    assert response == {"batchItemFailures": []}
    assert len(aws.thumbnails()) == 2 * len(SIZES)
    assert emitted_metrics() == {"ThumbnailsWritten": 4, "ImagesProcessed": 2}


def test_event_without_etag_is_processed(
    aws, make_s3_body, make_sqs_event, invoke, jpeg_small_100x50
) -> None:
    aws.put("no-etag.jpg", jpeg_small_100x50)

    invoke(make_sqs_event(make_s3_body("no-etag.jpg", etag=None)))

    assert len(aws.thumbnails()) == len(SIZES)


def test_notification_sent_by_moto_round_trips(
    aws, make_sqs_event, invoke, emitted_metrics, jpeg_small_100x50
) -> None:
    """Bodies produced by moto's own S3 -> SQS notifications (incl. its s3:TestEvent)."""
    queue_url = aws.sqs.create_queue(QueueName="uploads")["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws.s3.put_bucket_notification_configuration(
        Bucket=SOURCE_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    aws.put("moto/sent this.jpg", jpeg_small_100x50)
    messages = aws.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]

    response = invoke(make_sqs_event(*(message["Body"] for message in messages)))

    assert response == {"batchItemFailures": []}
    assert sorted(aws.thumbnails()) == [thumbnail_key("moto/sent this", s, "jpg") for s in SIZES]
    assert emitted_metrics() == {
        "TestEventsIgnored": 1,
        "ThumbnailsWritten": 2,
        "ImagesProcessed": 1,
    }


def test_clients_and_settings_are_created_once_and_reused(
    aws, notification_for, make_sqs_event, invoke, jpeg_small_100x50
) -> None:
    assert handler._s3_client.cache_info().currsize == 0, "no client before the first event"
    uploaded = aws.put("a.jpg", jpeg_small_100x50)

    invoke(make_sqs_event(notification_for(uploaded)))
    invoke(make_sqs_event(notification_for(uploaded)))

    assert handler._s3_client.cache_info().misses == 1
    assert handler._settings.cache_info().misses == 1


def test_metrics_are_emitted_as_emf_in_the_configured_namespace(
    aws, notification_for, make_sqs_event, invoke, capsys, jpeg_small_100x50
) -> None:
    uploaded = aws.put("a.jpg", jpeg_small_100x50)

    invoke(make_sqs_event(notification_for(uploaded)))

    [blob] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert blob["service"] == "image-resize-test"


# ==========================================================================================
# handler.py: every bad input has a defined outcome


def test_s3_test_event_is_acknowledged_and_counted(
    aws, make_sqs_event, invoke, emitted_metrics
) -> None:
    response = invoke(make_sqs_event(TEST_EVENT_BODY))

    assert response == {"batchItemFailures": []}
    assert aws.thumbnails() == {}
    assert aws.dead_letters() == []
    assert emitted_metrics() == {"TestEventsIgnored": 1}


def test_malformed_json_body_is_dead_lettered_with_its_reason_and_acknowledged(
    aws, make_sqs_event, invoke, emitted_metrics
) -> None:
    response = invoke(make_sqs_event("{not json"))

    assert response == {"batchItemFailures": []}
    [message] = aws.dead_letters()
    assert message["Body"] == "{not json"
    attributes = message["MessageAttributes"]
    assert attributes["ErrorReason"]["StringValue"].startswith("body is not JSON")
    assert attributes["SourceMessageId"]["StringValue"] == "msg-1"
    assert emitted_metrics() == {"MessagesDeadLettered": 1}


def test_a_malformed_body_redelivered_after_a_lost_delete_is_dead_lettered_once(
    aws, make_sqs_event, invoke, monkeypatch, emitted_metrics
) -> None:
    """With its ledger table (IDEMPOTENCY_TABLE, set by the stack), the redelivery of a
    dead-lettered message (its delete was lost) is acknowledged without a second copy."""
    create_idempotency_table(boto3.client("dynamodb", region_name=REGION))
    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY_TABLE)

    assert invoke(make_sqs_event("{not json")) == {"batchItemFailures": []}
    assert invoke(make_sqs_event("{not json")) == {"batchItemFailures": []}  # redelivered msg-1

    [copy] = aws.dead_letters()
    assert copy["MessageAttributes"]["SourceMessageId"]["StringValue"] == "msg-1"
    assert emitted_metrics() == {"MessagesDeadLettered": 1, "DuplicatesSkipped": 1}


def test_without_a_ledger_table_a_redelivered_malformed_body_is_copied_again(
    aws, make_sqs_event, invoke
) -> None:
    """No IDEMPOTENCY_TABLE (documented at-least-once): a lost delete means a second DLQ
    copy, recognisable by the source message id it shares with the first."""
    invoke(make_sqs_event("{not json"))
    invoke(make_sqs_event("{not json"))  # SQS redelivers msg-1: its delete was lost

    copies = aws.dead_letters()
    assert len(copies) == 2
    assert {m["MessageAttributes"]["SourceMessageId"]["StringValue"] for m in copies} == {"msg-1"}


def test_malformed_body_without_dead_letter_queue_is_a_batch_item_failure(
    aws, make_sqs_event, invoke, monkeypatch, emitted_metrics
) -> None:
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")

    response = invoke(make_sqs_event("{not json", TEST_EVENT_BODY))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert aws.dead_letters() == []
    assert emitted_metrics() == {"RecordsFailed": 1, "TestEventsIgnored": 1}


def test_malformed_body_is_a_batch_item_failure_when_dead_lettering_fails(
    aws, make_sqs_event, invoke, monkeypatch, handler_logs
) -> None:
    monkeypatch.setenv(
        "DEAD_LETTER_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/deleted"
    )

    response = invoke(make_sqs_event("{not json", TEST_EVENT_BODY))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    [error] = [log for log in handler_logs if log["level"] == "ERROR"]
    assert error["message"].startswith("Malformed message could not be sent")
    assert "NonExistentQueue" in error["exception"]


DELETE = object()


def _record_with(path: str, value: Any) -> dict[str, Any]:
    """A valid one-record body with the field at ``path`` set to ``value`` (or removed)."""
    record = s3_record("photo.jpg")
    *parents, leaf = path.split(".")
    target = record
    for parent in parents:
        target = target[parent]
    if value is DELETE:
        del target[leaf]
    else:
        target[leaf] = value
    return {"Records": [record]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param([1, 2], "body is JSON list", id="json-array"),
        pytest.param('"just a string"', "body is JSON str", id="json-string"),
        pytest.param({"hello": "world"}, "no non-empty 'Records'", id="no-records"),
        pytest.param({"Records": []}, "no non-empty 'Records'", id="empty-records"),
        pytest.param({"Records": "nope"}, "no non-empty 'Records'", id="records-not-a-list"),
        pytest.param({"Records": ["nope"]}, "Records[0]: record is not an object", id="record-str"),
        pytest.param(_record_with("s3.bucket", DELETE), "missing field 'bucket'", id="no-bucket"),
        pytest.param(_record_with("s3.object.key", DELETE), "missing field 'key'", id="no-key"),
        pytest.param(_record_with("s3", DELETE), "missing field 's3'", id="no-s3"),
        pytest.param(_record_with("eventName", DELETE), "missing field 'eventName'", id="no-name"),
        pytest.param(_record_with("s3.object.key", 42), "s3.object.key must be", id="key-int"),
        pytest.param(_record_with("s3.object.key", ""), "s3.object.key must be", id="key-empty"),
        pytest.param(_record_with("s3.bucket.name", None), "s3.bucket.name must", id="bucket-null"),
        pytest.param(_record_with("s3.object.size", "big"), "s3.object.size must", id="size-str"),
        pytest.param(_record_with("s3.object.size", True), "s3.object.size must", id="size-bool"),
        pytest.param(_record_with("s3.object.eTag", 7), "s3.object.eTag must", id="etag-int"),
        pytest.param(_record_with("s3", "bucket"), "Records[0]:", id="s3-str"),
        pytest.param(_record_with("s3.object", []), "Records[0]:", id="object-list"),
        pytest.param(_record_with("eventSource", "aws:sns"), "not 'aws:s3'", id="not-s3"),
        pytest.param("[" * 100_000 + "]" * 100_000, "body is not JSON", id="absurd-nesting"),
    ],
)
def test_malformed_notification_is_dead_lettered_with_its_reason(
    aws, make_sqs_event, invoke, emitted_metrics, body, reason
) -> None:
    response = invoke(make_sqs_event(body))

    assert response == {"batchItemFailures": []}
    [message] = aws.dead_letters()
    assert reason in message["MessageAttributes"]["ErrorReason"]["StringValue"]
    assert message["Body"] == (body if isinstance(body, str) else json.dumps(body))
    assert emitted_metrics() == {"MessagesDeadLettered": 1}


def test_one_malformed_record_dead_letters_the_whole_message_before_any_work(
    aws, make_sqs_event, invoke, jpeg_small_100x50
) -> None:
    uploaded = aws.put("ok.jpg", jpeg_small_100x50)
    good = s3_record(uploaded["key"], size=uploaded["size"], etag=uploaded["etag"])
    body = {"Records": [good, {"eventSource": "aws:s3"}]}

    invoke(make_sqs_event(body))

    assert aws.thumbnails() == {}
    assert len(aws.dead_letters()) == 1


def test_object_removed_event_is_ignored(
    aws, make_s3_body, make_sqs_event, invoke, emitted_metrics
) -> None:
    body = make_s3_body("photo.jpg", event_name="ObjectRemoved:Delete", etag=None)

    response = invoke(make_sqs_event(body))

    assert response == {"batchItemFailures": []}
    assert emitted_metrics() == {"EventsIgnored": 1}


def test_folder_marker_is_ignored(
    aws, make_s3_body, make_sqs_event, invoke, emitted_metrics
) -> None:
    aws.put("new-folder/", b"")

    response = invoke(make_sqs_event(make_s3_body("new-folder/", size=0, etag=None)))

    assert response == {"batchItemFailures": []}
    assert emitted_metrics() == {"EventsIgnored": 1}


def test_object_deleted_before_processing_is_dropped(
    aws, notification_for, make_sqs_event, invoke, emitted_metrics, jpeg_small_100x50
) -> None:
    uploaded = aws.put("gone.jpg", jpeg_small_100x50)
    aws.s3.delete_object(Bucket=SOURCE_BUCKET, Key="gone.jpg")

    response = invoke(make_sqs_event(notification_for(uploaded)))

    assert response == {"batchItemFailures": []}
    assert aws.thumbnails() == {}
    assert emitted_metrics() == {"ObjectsMissing": 1}


def test_stale_event_for_an_overwritten_object_is_dropped(
    aws, notification_for, make_sqs_event, invoke, emitted_metrics, jpeg_small_100x50, webp_1600x900
) -> None:
    first_version = aws.put("photo.jpg", jpeg_small_100x50)
    aws.put("photo.jpg", webp_1600x900)  # overwritten: its own event will follow

    response = invoke(make_sqs_event(notification_for(first_version)))

    assert response == {"batchItemFailures": []}
    assert aws.thumbnails() == {}
    assert emitted_metrics() == {"StaleEventsIgnored": 1}


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("zero_bytes", "empty"),
        ("truncated_jpeg", "corrupt"),
        ("text_named_jpg", "not_an_image"),
        ("gif_bytes", "unsupported_format"),
        ("image_bomb_png", "too_many_pixels"),
    ],
)
def test_rejected_content_is_dropped_with_a_warning_naming_key_and_reason(
    aws,
    notification_for,
    make_sqs_event,
    invoke,
    emitted_metrics,
    handler_logs,
    request,
    fixture,
    reason,
) -> None:
    content = {"zero_bytes": b"", "text_named_jpg": b"hello, I am text\n"}.get(fixture)
    if content is None:
        content = request.getfixturevalue(fixture)
    uploaded = aws.put(f"uploads/{fixture}.jpg", content)

    response = invoke(make_sqs_event(notification_for(uploaded)))

    assert response == {"batchItemFailures": []}
    assert aws.thumbnails() == {}
    assert aws.dead_letters() == []
    assert emitted_metrics() == {"ImagesRejected": 1}
    [warning] = [log for log in handler_logs if log["level"] == "WARNING"]
    assert warning["key"] == f"uploads/{fixture}.jpg"
    assert warning["reason"] == reason
    assert warning["message"] == f"Image rejected ({reason}): uploads/{fixture}.jpg"
    assert warning["message_id"] == "msg-1"


def test_image_over_the_pixel_limit_is_rejected(
    aws, notification_for, make_sqs_event, invoke, monkeypatch, emitted_metrics, jpeg_1600x900
) -> None:
    monkeypatch.setenv("MAX_IMAGE_PIXELS", str(1600 * 900 - 1))
    uploaded = aws.put("big.jpg", jpeg_1600x900)

    invoke(make_sqs_event(notification_for(uploaded)))

    assert aws.thumbnails() == {}
    assert emitted_metrics() == {"ImagesRejected": 1}


def _record_get_object_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    client = handler._s3_client()
    real_get_object = client.get_object

    def get_object(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_get_object(**kwargs)

    monkeypatch.setattr(client, "get_object", get_object)
    return calls


def test_object_over_max_source_bytes_in_the_event_is_rejected_without_a_download(
    aws, notification_for, make_sqs_event, invoke, monkeypatch, emitted_metrics, jpeg_1600x900
) -> None:
    monkeypatch.setenv("MAX_SOURCE_BYTES", str(len(jpeg_1600x900) - 1))
    uploaded = aws.put("huge.jpg", jpeg_1600x900)
    get_object_calls = _record_get_object_calls(monkeypatch)

    response = invoke(make_sqs_event(notification_for(uploaded)))

    assert response == {"batchItemFailures": []}
    assert get_object_calls == []
    assert aws.thumbnails() == {}
    assert emitted_metrics() == {"ImagesRejected": 1}


def test_object_over_max_source_bytes_is_rejected_from_content_length(
    aws, make_s3_body, make_sqs_event, invoke, monkeypatch, emitted_metrics, jpeg_1600x900
) -> None:
    """The event understates the size: the object's ContentLength is checked before reading."""
    monkeypatch.setenv("MAX_SOURCE_BYTES", str(len(jpeg_1600x900) - 1))
    aws.put("huge.jpg", jpeg_1600x900)

    response = invoke(make_sqs_event(make_s3_body("huge.jpg", size=10, etag=None)))

    assert response == {"batchItemFailures": []}
    assert aws.thumbnails() == {}
    assert emitted_metrics() == {"ImagesRejected": 1}


def test_event_for_the_destination_bucket_is_dropped_to_prevent_recursion(
    aws, make_s3_body, make_sqs_event, invoke, emitted_metrics, jpeg_small_100x50
) -> None:
    aws.put("thumbnails/128/cat.jpg", jpeg_small_100x50, bucket=DESTINATION_BUCKET)
    body = make_s3_body("thumbnails/128/cat.jpg", bucket=DESTINATION_BUCKET, etag=None)

    response = invoke(make_sqs_event(body))

    assert response == {"batchItemFailures": []}
    assert sorted(aws.thumbnails()) == ["thumbnails/128/cat.jpg"]  # nothing new
    assert emitted_metrics() == {"RecursionPrevented": 1}


@pytest.mark.parametrize(
    "error",
    [
        ClientError(
            {
                "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                "ResponseMetadata": {"HTTPStatusCode": 503},
            },
            "GetObject",
        ),
        ClientError(
            {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
            "GetObject",
        ),
        EndpointConnectionError(endpoint_url="https://conveyor-uploads.s3.amazonaws.com"),
    ],
    ids=["slow-down", "internal-error", "connection-error"],
)
def test_transient_error_fails_only_its_record(
    aws,
    notification_for,
    make_sqs_event,
    invoke,
    monkeypatch,
    emitted_metrics,
    jpeg_small_100x50,
    error,
) -> None:
    throttled = aws.put("throttled.jpg", jpeg_small_100x50)
    fine = aws.put("fine.jpg", jpeg_small_100x50)
    client = handler._s3_client()
    real_get_object = client.get_object

    def get_object(**kwargs: Any) -> Any:
        if kwargs["Key"] == "throttled.jpg":
            raise error
        return real_get_object(**kwargs)

    monkeypatch.setattr(client, "get_object", get_object)

    response = invoke(make_sqs_event(notification_for(throttled), notification_for(fine)))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert sorted(aws.thumbnails()) == [thumbnail_key("fine", size, "jpg") for size in SIZES]
    assert emitted_metrics() == {"RecordsFailed": 1, "ThumbnailsWritten": 2, "ImagesProcessed": 1}


def test_transient_errors_are_classified(aws) -> None:
    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
        )

    assert handler.is_transient(client_error("SlowDown", 503))
    assert handler.is_transient(client_error("ThrottlingException", 400))
    assert handler.is_transient(client_error("RequestTimeout", 400))
    assert handler.is_transient(client_error("Whatever", 502))
    assert not handler.is_transient(client_error("AccessDenied", 403))
    assert not handler.is_transient(RuntimeError("boom"))


def test_a_wrapped_throttling_error_is_transient_too() -> None:
    """The unified classification (handler kit) follows __cause__; the former image_resize
    copy only looked at the error itself and called a wrapped SlowDown unexpected."""
    slow_down = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )
    wrapped = RuntimeError("thumbnail upload failed")
    wrapped.__cause__ = slow_down
    assert handler.is_transient(wrapped)


def test_unexpected_error_is_a_batch_item_failure(
    aws, notification_for, make_sqs_event, invoke, monkeypatch, handler_logs, jpeg_small_100x50
) -> None:
    uploaded = aws.put("a.jpg", jpeg_small_100x50)

    monkeypatch.setattr(handler, "make_thumbnails", raising(RuntimeError("bug")))

    response = invoke(make_sqs_event(notification_for(uploaded), TEST_EVENT_BODY))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    [error] = [log for log in handler_logs if log["level"] == "ERROR"]
    assert error["key"] == "a.jpg"
    assert "RuntimeError: bug" in error["exception"]


def test_missing_source_bucket_is_a_batch_item_failure(
    aws, make_s3_body, make_sqs_event, invoke
) -> None:
    # NoSuchBucket is not a "missing object": it is retried and ends in the DLQ, not dropped.
    body = make_s3_body("a.jpg", bucket="someone-elses-bucket")

    response = invoke(make_sqs_event(body, TEST_EVENT_BODY))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}


def test_access_denied_on_read_is_a_batch_item_failure(
    aws, notification_for, make_sqs_event, invoke, monkeypatch, jpeg_small_100x50
) -> None:
    # What S3 answers for a missing key when the role lacks s3:ListBucket on the bucket.
    uploaded = aws.put("a.jpg", jpeg_small_100x50)
    client = handler._s3_client()
    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "GetObject",
    )
    monkeypatch.setattr(client, "get_object", raising(denied))

    response = invoke(make_sqs_event(notification_for(uploaded), TEST_EVENT_BODY))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert aws.thumbnails() == {}


def test_failing_put_is_a_batch_item_failure(
    aws, notification_for, make_sqs_event, invoke, jpeg_small_100x50
) -> None:
    uploaded = aws.put("a.jpg", jpeg_small_100x50)
    aws.s3.delete_bucket(Bucket=DESTINATION_BUCKET)

    response = invoke(make_sqs_event(notification_for(uploaded), TEST_EVENT_BODY))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}


def test_batch_where_every_record_fails_raises_so_lambda_backs_off(
    aws, notification_for, make_sqs_event, invoke, monkeypatch, emitted_metrics, jpeg_small_100x50
) -> None:
    uploaded = aws.put("a.jpg", jpeg_small_100x50)
    client = handler._s3_client()
    slow_down = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )
    monkeypatch.setattr(client, "get_object", raising(slow_down))

    with pytest.raises(BatchProcessingError, match="All records failed processing"):
        invoke(make_sqs_event(notification_for(uploaded), notification_for(uploaded)))

    assert aws.thumbnails() == {}
    assert emitted_metrics() == {"RecordsFailed": 2}


def test_mixed_batch_reports_only_the_failed_message(
    aws, make_sqs_event, invoke, monkeypatch, emitted_metrics, notification_for, jpeg_small_100x50
) -> None:
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")
    good = aws.put("good.jpg", jpeg_small_100x50)
    event = make_sqs_event(
        notification_for(good),
        "garbage",  # fails: no DLQ configured
        TEST_EVENT_BODY,
        notification_for(good, event_name="ObjectRemoved:Delete"),
    )

    response = invoke(event)

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-2"}]}
    assert emitted_metrics() == {
        "ThumbnailsWritten": 2,
        "ImagesProcessed": 1,
        "RecordsFailed": 1,
        "TestEventsIgnored": 1,
        "EventsIgnored": 1,
    }


def test_log_lines_name_their_message_and_object_without_leaking_to_the_next(
    aws, make_sqs_event, invoke, monkeypatch, handler_logs, notification_for, jpeg_small_100x50
) -> None:
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")
    good = aws.put("good.jpg", jpeg_small_100x50)

    invoke(make_sqs_event(notification_for(good), "garbage"))

    [written] = [log for log in handler_logs if log["message"] == "Thumbnails written"]
    assert (written["message_id"], written["key"], written["bucket"]) == (
        "msg-1",
        "good.jpg",
        SOURCE_BUCKET,
    )
    [malformed] = [log for log in handler_logs if log["level"] == "ERROR"]
    assert malformed["message_id"] == "msg-2"
    assert "key" not in malformed


# ==========================================================================================
# handler.py: configuration


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DESTINATION_BUCKET", None), ("THUMBNAIL_SIZES", "128,huge"), ("THUMBNAIL_SIZES", "8")],
)
def test_invalid_config_fails_the_whole_batch_with_a_clear_error(
    aws,
    notification_for,
    make_sqs_event,
    invoke,
    monkeypatch,
    handler_logs,
    emitted_metrics,
    jpeg_small_100x50,
    variable,
    value,
) -> None:
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    uploaded = aws.put("a.jpg", jpeg_small_100x50)

    with pytest.raises(ConfigError, match=rf"^{variable} ") as raised:
        invoke(make_sqs_event(notification_for(uploaded), notification_for(uploaded)))

    assert raised.value.variable == variable
    assert aws.thumbnails() == {}
    [error] = [log for log in handler_logs if log["level"] == "ERROR"]
    assert error["message"] == "Invalid configuration: failing the whole batch"
    assert error["variable"] == variable
    assert error["exception_name"] == "ConfigError"
    assert emitted_metrics() == {"RecordsFailed": 2}


def test_config_is_read_again_after_a_failure(
    aws, notification_for, make_sqs_event, invoke, monkeypatch, jpeg_small_100x50
) -> None:
    """functools.cache does not cache exceptions: a fixed environment is picked up."""
    monkeypatch.delenv("DESTINATION_BUCKET")
    uploaded = aws.put("a.jpg", jpeg_small_100x50)
    event = make_sqs_event(notification_for(uploaded))
    with pytest.raises(ConfigError):
        invoke(event)

    monkeypatch.setenv("DESTINATION_BUCKET", DESTINATION_BUCKET)

    assert invoke(event) == {"batchItemFailures": []}
