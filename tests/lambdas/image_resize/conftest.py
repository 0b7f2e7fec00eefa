"""Fixtures of the image_resize handler tests: import path, Powertools env, moto, events, images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from tests.support.aws import mocked_aws, powertools_env
from tests.support.handlers import powertools_environment, use_asset
from tests.support.lambda_context import LambdaContext
from tests.support.observability import captured_logs

HERE = Path(__file__).resolve().parent
use_asset("image_resize", HERE)

from image_resize_support import (  # noqa: E402
    DESTINATION_BUCKET,
    DLQ_NAME,
    METRICS_NAMESPACE,
    REGION,
    SERVICE_NAME,
    SIZES,
    SOURCE_BUCKET,
    Aws,
    encode,
    exif_with_gps,
    gradient,
    png_header_only,
    s3_record,
    sqs_record,
)

with powertools_environment(service=SERVICE_NAME, namespace=METRICS_NAMESPACE):
    from image_resize import handler as handler_module


@pytest.fixture(autouse=True)
def powertools(monkeypatch: pytest.MonkeyPatch) -> None:
    powertools_env(monkeypatch, service=SERVICE_NAME, namespace=METRICS_NAMESPACE)


@pytest.fixture
def metrics_namespace() -> str:
    return METRICS_NAMESPACE


@pytest.fixture(autouse=True)
def handler_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid configuration; tests change single variables with monkeypatch."""
    monkeypatch.setenv("DESTINATION_BUCKET", DESTINATION_BUCKET)
    monkeypatch.setenv("THUMBNAIL_SIZES", ",".join(map(str, SIZES)))
    for name in ("OUTPUT_PREFIX", "MAX_SOURCE_BYTES", "MAX_IMAGE_PIXELS", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def reset_handler_state() -> Iterator[None]:
    """Forget cached settings, clients and metrics, so each test's env and moto mock apply."""

    def reset() -> None:
        handler_module._settings.cache_clear()
        handler_module._s3_client.cache_clear()
        handler_module._sqs_client.cache_clear()
        handler_module._dynamodb_client.cache_clear()
        handler_module.metrics.clear_metrics()

    reset()
    yield
    reset()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, boto3_session: boto3.session.Session) -> Iterator[Aws]:
    """moto S3 (source and destination buckets) and SQS (the DLQ); DEAD_LETTER_QUEUE_URL set."""
    with mocked_aws(boto3_session):
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.create_bucket(Bucket=DESTINATION_BUCKET)
        dlq_url = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", dlq_url)
        yield Aws(s3=s3, sqs=sqs, dlq_url=dlq_url)


# ------------------------------------------------------------------------------------------
# Events and invocation


@pytest.fixture
def make_s3_body() -> Callable[..., dict[str, Any]]:
    """make_s3_body(key, **s3_record options): a one-record S3 notification body."""

    def make(key: str, **options: Any) -> dict[str, Any]:
        return {"Records": [s3_record(key, **options)]}

    return make


@pytest.fixture
def notification_for() -> Callable[..., dict[str, Any]]:
    """notification_for(Aws.put(...) result): a body with the upload's real size and eTag."""

    def make(uploaded: dict[str, Any], **options: Any) -> dict[str, Any]:
        fields = {"size": uploaded["size"], "etag": uploaded["etag"], **options}
        return {"Records": [s3_record(uploaded["key"], **fields)]}

    return make


@pytest.fixture
def make_sqs_event() -> Callable[..., dict[str, Any]]:
    """make_sqs_event(*bodies): one SQS record per body, message ids msg-1, msg-2, ..."""

    def make(*bodies: dict[str, Any] | list[Any] | str) -> dict[str, Any]:
        return {"Records": [sqs_record(body, f"msg-{n}") for n, body in enumerate(bodies, 1)]}

    return make


@pytest.fixture
def invoke(lambda_context: LambdaContext) -> Callable[[dict[str, Any]], Any]:
    """Call the Lambda entry point the way the runtime does."""

    def call(event: dict[str, Any]) -> Any:
        return handler_module.handler(event, lambda_context)

    return call


# ------------------------------------------------------------------------------------------
# Observability


@pytest.fixture
def handler_logs() -> Iterator[list[dict[str, Any]]]:
    """The handler's structured log lines (level, message, message_id, key, reason...).

    The Powertools Logger is a stdlib logger named after the service; its own handler writes
    to the sys.stdout of import time, which capsys cannot see, so a second handler with the
    same formatter is attached for the test.
    """
    with captured_logs(handler_module.logger) as logs:
        yield logs


# ------------------------------------------------------------------------------------------
# Images (generated once per session)


@pytest.fixture(scope="session")
def jpeg_1600x900() -> bytes:
    """Landscape JPEG whose EXIF includes GPS coordinates."""
    return encode(gradient((1600, 900)), "JPEG", quality=90, exif=exif_with_gps())


@pytest.fixture(scope="session")
def png_rgba_1600x900() -> bytes:
    """Left half fully transparent, right half opaque."""
    return encode(gradient((1600, 900), "RGBA"), "PNG")


@pytest.fixture(scope="session")
def webp_1600x900() -> bytes:
    return encode(gradient((1600, 900)), "WEBP", quality=90)


@pytest.fixture(scope="session")
def jpeg_small_100x50() -> bytes:
    return encode(gradient((100, 50)), "JPEG")


@pytest.fixture(scope="session")
def jpeg_rotated_exif() -> bytes:
    """Stored 800x400, left half red, right half blue, EXIF orientation 6 (rotate 90° CW).

    Displayed correctly it is 400x800 (portrait), red at the top, blue at the bottom.
    """
    image = Image.new("RGB", (800, 400), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 400, 400))
    return encode(image, "JPEG", quality=95, exif=exif_with_gps(orientation=6))


@pytest.fixture(scope="session")
def animated_webp() -> bytes:
    """Three 400x200 frames: red, green, blue."""
    frames = [Image.new("RGB", (400, 200), color) for color in ("red", "lime", "blue")]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)


@pytest.fixture(scope="session")
def gif_bytes() -> bytes:
    return encode(gradient((300, 200)), "GIF")


@pytest.fixture(scope="session")
def truncated_jpeg(jpeg_1600x900: bytes) -> bytes:
    return jpeg_1600x900[: len(jpeg_1600x900) // 2]


@pytest.fixture(scope="session")
def image_bomb_png() -> bytes:
    """68 bytes claiming 50000 x 50000 pixels (2.5 gigapixels): never allocated."""
    return png_header_only(50_000, 50_000)
