"""What the deployer produces and the runtime consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


@dataclass
class DeployedResource:
    """One created resource: its physical id (what ``Ref`` returns) and ``GetAtt`` attributes."""

    logical_id: str
    type: str
    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)  # strings; list attributes too
    # Resolved properties (intrinsics replaced by values), for the runtime.
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class FunctionSpec:
    """A Lambda function the runtime can run in-process."""

    logical_id: str
    name: str  # physical function name
    arn: str
    handler: str  # "package.module.function"
    code_dir: Path  # the staged asset folder in cdk.out
    environment: dict[str, str]
    timeout_s: int
    runtime: str
    # Asynchronous invocation settings (Lambda's EventInvokeConfig); None = Lambda defaults.
    max_retry_attempts: int | None = None
    on_failure_queue_url: str | None = None
    # Where Lambda writes its logs: LoggingConfig.LogGroup, else /aws/lambda/<name>.
    log_group: str = ""
    # ReservedConcurrentExecutions (None: not set): caps the runtime's ``concurrency``.
    reserved_concurrency: int | None = None


@dataclass
class Route:
    """Messages waiting in ``queue_url`` are to be delivered to a function by the runtime.

    kind: ``"sqs"`` — an SQS event source mapping (the queue is the real queue);
    ``"sns"`` — an SNS → Lambda subscription, materialised as an internal queue subscribed to
    the topic with the subscription's filter policy (moto evaluates the filter); each message
    body is the SNS envelope; ``"events"`` — an EventBridge rule → Lambda target, materialised
    as an internal queue added as a target of the rule; each message body is the event.
    """

    kind: str
    source: str  # logical id of the mapping / subscription / rule (for traces)
    queue_url: str
    queue_arn: str
    function_logical_id: str
    batch_size: int = 10
    batching_window_s: int = 0
    report_batch_item_failures: bool = False
    fifo: bool = False
    # kind "sqs": ScalingConfig.MaximumConcurrency (None: not set), caps ``concurrency``.
    maximum_concurrency: int | None = None
    # kind "kinesis" (a Kinesis event source mapping; queue_url is "", queue_arn the stream)
    # and "dynamodb-streams" (a DynamoDB Streams mapping; queue_arn the table's stream ARN):
    # where a new mapping starts, bisect, retries (-1: forever), maximum record age (-1: none),
    # the on-failure destination's ARN (S3 bucket or SQS queue), parallelization, the mapping id.
    starting_position: str = "TRIM_HORIZON"
    starting_position_timestamp: float | None = None
    bisect_batch_on_error: bool = False
    max_retry_attempts: int = -1
    max_record_age_s: int = -1
    on_failure_arn: str | None = None
    parallelization_factor: int = 1
    tumbling_window_s: int = 0
    mapping_id: str = ""
    # Stream mappings ("kinesis", "dynamodb-streams"): the FilterCriteria patterns (JSON);
    # a record matching none is consumed without an invocation.
    filters: tuple[str, ...] = ()
    # kind "firehose" (a delivery stream reading queue_arn, a Kinesis stream; no function):
    # its destination settings (bucket, prefixes, compression, buffering, KMS key).
    options: dict[str, Any] = field(default_factory=dict)
    # ``"stepfunctions"``: the state machine an EventBridge rule starts (no function then).
    state_machine_arn: str = ""


@dataclass
class DeployedStack:
    name: str
    template: dict[str, Any]
    resources: dict[str, DeployedResource] = field(default_factory=dict)
    # logical id -> why it was deliberately not created (e.g. IAM: not enforced by moto).
    skipped: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Deployment:
    stacks: dict[str, DeployedStack] = field(default_factory=dict)
    account_id: str = ACCOUNT_ID
    region: str = REGION
