"""Your consumer: one S3 notification per SQS record; reports the records it could not read
(``ReportBatchItemFailures``), so SQS retries them and then moves them to the DLQ."""

import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        try:
            notification = json.loads(record["body"])
        except ValueError:
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        if notification.get("Event") == "s3:TestEvent":  # sent once, when S3 is configured
            print(json.dumps({"level": "INFO", "message": "S3 test event ignored"}))
            continue
        for item in notification.get("Records", []):
            key = item["s3"]["object"]["key"]
            print(json.dumps({"level": "INFO", "message": "upload received", "key": key}))
    return {"batchItemFailures": failures}
