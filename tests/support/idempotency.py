"""Powertools idempotency on moto DynamoDB: the table, record keys, and reading the records."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

IDEMPOTENCY_TABLE = "conveyor-idempotency"
# handler_kit.dead_letter.DeadLetterLedger items share the idempotency table.
DEAD_LETTER_LEDGER_PREFIX = "dead-letter#"


def create_idempotency_table(dynamodb: Any, name: str = IDEMPOTENCY_TABLE) -> None:
    """Powertools' default schema: partition key ``id`` (string), TTL attribute ``expiration``."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )


def idempotency_key(prefix: str, business_key: str) -> str:
    """The record id Powertools writes for ``event_key_jmespath`` selecting ``business_key``."""
    return f"{prefix}#{hashlib.md5(json.dumps(business_key).encode()).hexdigest()}"


@dataclass
class Aws:
    """Clients on the moto backend plus the few reads the tests repeat."""

    dynamodb: Any
    sqs: Any | None = None
    dlq_url: str | None = None
    table: str = IDEMPOTENCY_TABLE

    def dead_letters(self) -> list[dict[str, Any]]:
        assert self.sqs is not None
        assert self.dlq_url is not None
        response = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return response.get("Messages", [])

    def dead_letter_ledger(self) -> dict[str, str]:
        """handler_kit.dead_letter's ledger in the table: item id -> DLQ message id."""
        return {
            item["id"]["S"]: item["dlqMessageId"]["S"]
            for item in self.dynamodb.scan(TableName=self.table)["Items"]
            if item["id"]["S"].startswith(DEAD_LETTER_LEDGER_PREFIX)
        }

    def idempotency_records(self) -> dict[str, dict[str, Any]]:
        """Record id -> {"status", "data" (the stored result, decoded), "expiration"}."""
        records = {}
        for item in self.dynamodb.scan(TableName=self.table)["Items"]:
            if item["id"]["S"].startswith(DEAD_LETTER_LEDGER_PREFIX):
                continue  # handler_kit.dead_letter's ledger shares the table
            data = item.get("data", {}).get("S")
            records[item["id"]["S"]] = {
                "status": item["status"]["S"],
                "data": None if data is None else json.loads(data),
                "expiration": int(item["expiration"]["N"]),
            }
        return records
