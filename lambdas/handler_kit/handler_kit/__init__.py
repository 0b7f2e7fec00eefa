"""Conveyor's handler kit: the building blocks every Conveyor Lambda handler shares.

Copied next to each handler package when its asset is staged (``conveyor.constructs.assets``),
so a function imports it as the top-level package ``handler_kit``. Stdlib, boto3/botocore and
aws_lambda_powertools only; nothing AWS is touched at import time.

* ``contract``: the environment variable and metric names the CDK code shares (stdlib only);
* ``settings``: environment parsing (``ConfigError`` names the variable);
* ``failures``: which AWS errors are transient, queue missing, condition failed;
* ``clients``: lazily created, cached boto3 clients (standard retry mode);
* ``messages``: JSON bodies and short renderings of offending values;
* ``dead_letter``: direct sends to a standard or FIFO DLQ;
* ``consumer``: the SQS partial-batch consumer skeleton, and the failure logging of
  asynchronously invoked handlers;
* ``idempotency``: Powertools idempotency wiring (once-per-key work, duplicate hook).
"""
