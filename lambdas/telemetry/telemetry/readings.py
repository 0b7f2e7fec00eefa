"""Device readings: parsing a Kinesis record's data, and the per-device aggregate update."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError
from handler_kit.failures import is_conditional_check_failed
from handler_kit.messages import load_json_object, shown

from . import contract

_DEVICE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class MalformedReading(ValueError):
    """The record's data is not a reading: it fails until the mapping's retries are
    exhausted, then goes to the on-failure destination with the record."""


@dataclass(frozen=True)
class Reading:
    device_id: str
    value: Decimal
    read_at: str


def parse_reading(data: str, partition_key: str) -> Reading:
    """Parse a reading; raise :class:`MalformedReading` naming what is wrong."""
    body = load_json_object(data, "the record data", error=MalformedReading)
    device = body.get(contract.DEVICE_ID)
    if not isinstance(device, str) or not _DEVICE_ID.fullmatch(device):
        raise MalformedReading(f"{contract.DEVICE_ID} is {shown(device)}, not a device id")
    if not partition_key.startswith(device):
        # The producer keys by device (or device + suffix): anything else breaks the order.
        raise MalformedReading(
            f"partition key {shown(partition_key)} does not belong to device {device}"
        )
    value = body.get(contract.VALUE)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedReading(f"{contract.VALUE} is {shown(value)}, not a number")
    read_at = body.get(contract.READ_AT)
    if not isinstance(read_at, str) or not read_at:
        raise MalformedReading(f"{contract.READ_AT} is {shown(read_at)}, not a timestamp")
    return Reading(device, Decimal(value), read_at)


def padded(sequence_number: str) -> str:
    """A Kinesis sequence number (up to 56 digits, more than DynamoDB numbers hold), as text
    that sorts like the number."""
    return sequence_number.zfill(contract.SEQUENCE_WIDTH)


def aggregate(client: Any, table: str, reading: Reading, sequence_number: str) -> bool:
    """Add ``reading`` to its device's aggregate unless a record at or after
    ``sequence_number`` was already applied. True: applied; False: duplicate or older."""
    try:
        client.update_item(
            TableName=table,
            Key={contract.TABLE_KEY: {"S": reading.device_id}},
            UpdateExpression=(
                "SET #n = if_not_exists(#n, :zero) + :one, #t = if_not_exists(#t, :zero) + :v, "
                "#last = :v, #seq = :seq, #at = :at"
            ),
            ConditionExpression="attribute_not_exists(#seq) OR #seq < :seq",
            ExpressionAttributeNames={
                "#n": contract.READINGS,
                "#t": contract.TOTAL,
                "#last": contract.LAST_VALUE,
                "#seq": contract.LAST_SEQUENCE,
                "#at": contract.READ_AT,
            },
            ExpressionAttributeValues={
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":v": {"N": str(reading.value)},
                ":seq": {"S": padded(sequence_number)},
                ":at": {"S": reading.read_at},
            },
        )
    except ClientError as exc:
        if is_conditional_check_failed(exc):
            return False
        raise
    return True
