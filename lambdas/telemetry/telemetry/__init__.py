"""Telemetry: devices -> Kinesis Data Streams (partition key = device id) -> Lambda ->
DynamoDB per-device aggregates; the stream is also archived by Firehose to S3.

The asset root is ``lambdas/telemetry/``. Handler string: ``telemetry.handler.handler``.

Nothing here may import from outside this folder.
"""
