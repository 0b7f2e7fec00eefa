"""A Lambda context object, as Powertools' Logger and the idempotency utility read it."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.aws import ACCOUNT, REGION


@dataclass
class LambdaContext:
    function_name: str = "conveyor-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:conveyor-test"
    aws_request_id: str = "6f1a4b8e-0c55-4e3a-9d43-3b0c1d2e9f10"
    log_group_name: str = "/aws/lambda/conveyor-test"
    log_stream_name: str = "2026/01/01/[$LATEST]abcdef"
    remaining_time_in_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_time_in_millis
