"""Helpers shared by conftest.py and test_image_resize.py (images, S3/SQS events, moto).

A plain module rather than conftest: with --import-mode=importlib test modules cannot import
conftest. conftest.py puts this folder on sys.path; the generic pieces are in tests/support.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from PIL import Image

from tests.support import events

REGION = "us-east-1"
SOURCE_BUCKET = "conveyor-uploads"
DESTINATION_BUCKET = "conveyor-thumbnails"
DLQ_NAME = "image-resize-dlq"
SIZES = (128, 512)
SERVICE_NAME = "image-resize-test"
METRICS_NAMESPACE = "ConveyorTest"


# ------------------------------------------------------------------------------------------
# moto


@dataclass
class Aws:
    """Clients on the moto backend plus the few operations the tests repeat."""

    s3: Any
    sqs: Any
    dlq_url: str

    def put(self, key: str, data: bytes, bucket: str = SOURCE_BUCKET) -> dict[str, Any]:
        """Upload and return the facts an S3 notification would carry about it."""
        response = self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        return {"key": key, "size": len(data), "etag": response["ETag"].strip('"')}

    def thumbnails(self) -> dict[str, bytes]:
        """Every object of the destination bucket: key -> bytes."""
        listing = self.s3.list_objects_v2(Bucket=DESTINATION_BUCKET).get("Contents", [])
        return {item["Key"]: self.read(DESTINATION_BUCKET, item["Key"]) for item in listing}

    def read(self, bucket: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def dead_letters(self) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return response.get("Messages", [])


# ------------------------------------------------------------------------------------------
# Events


def s3_record(
    key: str,
    *,
    bucket: str = SOURCE_BUCKET,
    size: int = 1024,
    etag: str | None = "0123456789abcdef0123456789abcdef",
    event_name: str = "ObjectCreated:Put",
    encode: bool = True,
) -> dict[str, Any]:
    """One record of an S3 event notification as S3 sends it (key URL-encoded)."""
    s3_object: dict[str, Any] = {
        "key": quote_plus(key, safe="/") if encode else key,
        "size": size,
        "sequencer": "0062E99A88DC407460",
    }
    if etag is not None:
        s3_object["eTag"] = etag
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2026-01-01T12:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.10"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURI"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "thumbnails",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": s3_object,
        },
    }


# What S3 sends once when a notification configuration is saved. Acknowledged without work,
# it is the cheapest companion record in batches where another record must fail alone
# (when every record fails, the handler raises instead of listing them).
TEST_EVENT_BODY = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2026-01-01T12:00:00.000Z",
    "Bucket": SOURCE_BUCKET,
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


def sqs_record(body: dict[str, Any] | list[Any] | str, message_id: str) -> dict[str, Any]:
    """One record of the SQS event Lambda delivers; a non-str body is JSON-encoded."""
    return events.sqs_record(body, message_id, queue="image-resize-queue")


# ------------------------------------------------------------------------------------------
# Images


def encode(image: Image.Image, image_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A non-uniform picture; with mode RGBA its left half is fully transparent."""
    width, height = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size)
    image = Image.merge("RGB", (red, green, Image.new("L", size, 96)))
    if mode == "RGBA":
        alpha = Image.new("L", size, 255)
        alpha.paste(0, (0, 0, width // 2, height))
        image.putalpha(alpha)
    return image


def exif_with_gps(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "ConveyorCam"  # Make
    if orientation is not None:
        exif[0x0112] = orientation  # Orientation
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    return exif


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height; its pixel data is far too short."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
