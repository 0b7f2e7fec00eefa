"""Event sourcing on DynamoDB: the event store, stream projectors, and the outbox publisher.

- :class:`EventStore`: a table keyed by ``aggregateId`` + ``version`` (append-only: the handler
  kit's ``EventStore.append`` writes with ``attribute_not_exists``, so a command on a stale
  version fails with a conflict and never overwrites), its stream (new images), optional
  snapshots, point-in-time recovery, a customer-managed key, deletion protection on request.
- :class:`StreamProjector`: the store's stream → a Lambda that maintains a read model
  (keyed by ``aggregateId``, recording the last applied version), with the stream settings
  that keep a shard moving (bisect, bounded retries and record age, an on-failure queue,
  ``ReportBatchItemFailures``) and a filter on the event types it projects; optionally a
  rebuild function that replays the store into a fresh read model.
- :class:`OutboxPublisher`: the store's stream → a Lambda that puts each appended event on an
  EventBridge bus exactly as stored.

Why a Lambda and not EventBridge Pipes for the outbox: a Pipe's input transformer cannot turn
the DynamoDB-typed ``NewImage`` (the event's ``data`` is a JSON string attribute) back into
the stored event's JSON, so subscribers would get a different shape than the store holds;
a Lambda reuses the kit's ``StoredEvent`` (one definition of the event), reports failures per
record, and keeps per-aggregate order when an entry fails; and the sandbox emulates Lambda's
stream mappings, not Pipes (moto's Pipes backend is control plane only). The cost is one
function to operate.

Settings that break a service rule raise ``ValueError`` at synth, naming the construct.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from conveyor.constructs.checkov import checkov_skip
from conveyor.constructs.defaults import (
    DEAD_LETTER_ALARM_PERIOD,
    FUNCTION_TIMEOUT,
    ITERATOR_AGE_ALARM,
    LOG_RETENTION,
    MEMORY_SIZE_MB,
    STREAM_BATCH_SIZE,
    STREAM_MAX_RECORD_AGE,
    STREAM_RETRY_ATTEMPTS,
)
from conveyor.constructs.functions import acknowledge_encrypted_send, python_function
from conveyor.constructs.queues import dead_letter_queue, new_key
from conveyor.constructs.rules import acknowledge, known, require, seconds
from conveyor.lambdas.handler_kit.handler_kit import contract as kit

# DynamoDB Streams keeps records 24 hours: a maximum record age above it never applies.
STREAM_RETENTION_S = 24 * 3600
# Lambda's limit on one filter pattern.
MAX_FILTER_PATTERN_CHARS = 4096
# Item actions of the handler kit's EventStore.append (a multi-event append is a transaction
# of conditional puts) and of its reads (load, rebuild, aggregate_ids for a full rebuild).
APPEND_ACTIONS = ("dynamodb:PutItem", "dynamodb:ConditionCheckItem")
READ_ACTIONS = ("dynamodb:Query", "dynamodb:GetItem")
REBUILD_ACTIONS = ("dynamodb:Query", "dynamodb:Scan")
SNAPSHOT_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem")
READ_MODEL_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem")


def _table(
    scope: Construct,
    construct_id: str,
    *,
    sort_key: bool,
    key: kms.IKey,
    removal_policy: RemovalPolicy,
    deletion_protection: bool,
    stream: bool = False,
) -> dynamodb.Table:
    # dynamodb.Table, not TableV2: a TableV2 with a customer-managed key needs a stack with a
    # concrete region, and the constructs must work in region-agnostic stacks too.
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(
            name=kit.ES_AGGREGATE_ID, type=dynamodb.AttributeType.STRING
        ),
        sort_key=dynamodb.Attribute(name=kit.ES_VERSION, type=dynamodb.AttributeType.NUMBER)
        if sort_key
        else None,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=key,
        deletion_protection=deletion_protection,
        stream=dynamodb.StreamViewType.NEW_IMAGE if stream else None,
        removal_policy=removal_policy,
    )


class EventStore(Construct):
    """The event store table (and snapshot table).

    Attributes: ``table`` (keyed by ``aggregateId`` string + ``version`` number, stream of new
    images), ``snapshot_table`` (or None), ``encryption_key``, ``snapshot_every``,
    ``environment`` (the kit's variables: ``EVENT_STORE_TABLE``, ``SNAPSHOT_TABLE``,
    ``SNAPSHOT_EVERY``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        snapshot_every: int = 0,
        encryption_key: kms.IKey | None = None,
        deletion_protection: bool = False,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param snapshot_every: keep a snapshot table; the kit writes an aggregate's snapshot
            each time an append crosses a multiple of this many events, and ``load`` starts
            from it. 1–10,000. Default: 0 (no snapshots: every load replays from version 1).
        :param encryption_key: encrypts the tables, and the log groups, environment variables
            and failure queues of the projectors and outbox built on this store (its policy
            gets a statement letting CloudWatch Logs use it; an imported key's policy must
            allow that already). Default: a new customer-managed key with rotation (its
            policy and grants can be reviewed; an AWS-owned key's cannot).
        :param deletion_protection: refuse ``DeleteTable`` (set it in production: the store
            is the only copy of the state). Default: off.
        :param removal_policy: tables and key. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        if known(snapshot_every):
            require(
                0 <= snapshot_every <= 10_000,
                path,
                f"snapshot_every must be between 0 (no snapshots) and 10000 (got {snapshot_every})",
            )
        self.snapshot_every = snapshot_every
        self.encryption_key: kms.IKey = encryption_key or new_key(
            self,
            "Key",
            description=f"Encrypts the event store {path}",
            removal_policy=removal_policy,
        )
        self.table = _table(
            self,
            f"{construct_id}Events",
            sort_key=True,
            key=self.encryption_key,
            removal_policy=removal_policy,
            deletion_protection=deletion_protection,
            stream=True,
        )
        self.snapshot_table: dynamodb.Table | None = None
        self.environment: dict[str, str] = {kit.EVENT_STORE_TABLE: self.table.table_name}
        if snapshot_every:
            self.snapshot_table = _table(
                self,
                f"{construct_id}Snapshots",
                sort_key=False,
                key=self.encryption_key,
                removal_policy=removal_policy,
                deletion_protection=deletion_protection,
            )
            self.environment[kit.SNAPSHOT_TABLE] = self.snapshot_table.table_name
            self.environment[kit.SNAPSHOT_EVERY] = str(snapshot_every)

    @property
    def stream_arn(self) -> str:
        arn = self.table.table_stream_arn
        assert arn is not None  # the table always has its stream
        return arn

    def grant_append(self, grantee: iam.IGrantable) -> None:
        """Load and append (conditional puts, snapshots)."""
        self.table.grant(grantee, *READ_ACTIONS, *APPEND_ACTIONS)
        if self.snapshot_table is not None:
            self.snapshot_table.grant(grantee, *SNAPSHOT_ACTIONS)
        self.encryption_key.grant_encrypt_decrypt(grantee)

    def grant_read(self, grantee: iam.IGrantable, *, rebuild: bool = False) -> None:
        """Read one aggregate's events (``rebuild``: also scan every aggregate)."""
        self.table.grant(grantee, *(REBUILD_ACTIONS if rebuild else READ_ACTIONS))
        self.encryption_key.grant_decrypt(grantee)


class _StreamFunction:
    """The store's stream → one function in ``scope``, with Conveyor's stream defaults
    (shared by the projector and the outbox)."""

    def __init__(
        self,
        scope: Construct,
        *,
        event_store: EventStore,
        code: lambda_.Code,
        handler: str,
        event_types: Sequence[str] | None,
        environment: Mapping[str, str],
        layers: Sequence[lambda_.ILayerVersion],
        function_timeout: Duration | None,
        memory_size: int,
        batch_size: int,
        max_batching_window: Duration | None,
        parallelization_factor: int,
        bisect_batch_on_error: bool,
        retry_attempts: int,
        max_record_age: Duration | None,
        starting_position: lambda_.StartingPosition,
        iterator_age_threshold: Duration | None,
        log_retention: logs.RetentionDays,
        alarm_actions: Sequence[cloudwatch.IAlarmAction],
        removal_policy: RemovalPolicy,
    ) -> None:
        path = scope.node.path
        age = max_record_age or STREAM_MAX_RECORD_AGE
        _validate_stream(
            path,
            event_types=event_types,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            parallelization_factor=parallelization_factor,
            retry_attempts=retry_attempts,
            max_record_age=age,
            starting_position=starting_position,
        )
        self.function, self.log_group = python_function(
            scope,
            id_prefix=scope.node.id,
            code=code,
            handler=handler,
            timeout=function_timeout or FUNCTION_TIMEOUT,
            memory_size=memory_size,
            environment=environment,
            layers=layers,
            log_retention=log_retention,
            removal_policy=removal_policy,
            encryption_key=event_store.encryption_key,
        )
        checkov_skip(
            self.function,
            "CKV_AWS_116",
            "Invoked synchronously by its DynamoDB Streams event source mapping: a batch that "
            "keeps failing goes to the mapping's on-failure queue (bounded retries and record "
            "age); a function DLQ only serves asynchronous invocations.",
        )
        self.failure_queue: sqs.Queue = dead_letter_queue(
            scope,
            "FailureQueue",
            key=event_store.encryption_key,
            removal_policy=removal_policy,
        )
        self.filter_pattern = filter_pattern(event_types)
        self.event_source = event_sources.DynamoEventSource(
            event_store.table,
            starting_position=starting_position,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            parallelization_factor=parallelization_factor,
            bisect_batch_on_error=bisect_batch_on_error,
            retry_attempts=retry_attempts,
            max_record_age=age,
            report_batch_item_failures=True,
            on_failure=event_sources.SqsDlq(self.failure_queue),
            filters=[self.filter_pattern_criteria(event_types)],
        )
        self.function.add_event_source(self.event_source)
        acknowledge_encrypted_send(self.function, "its KMS-encrypted on-failure queue")
        self._acknowledge_stream_grants()

        threshold = seconds(iterator_age_threshold or ITERATOR_AGE_ALARM) or 300
        self.iterator_age_alarm = cloudwatch.Alarm(
            scope,
            "IteratorAgeAlarm",
            metric=self.function.metric(
                "IteratorAge", statistic="Maximum", period=Duration.minutes(1)
            ),
            threshold=threshold * 1000,
            evaluation_periods=5,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"{path}: more than {threshold:g} s behind the event store's stream (records "
                "age towards max_record_age, then skip to the on-failure queue)."
            ),
        )
        self.failure_alarm = cloudwatch.Alarm(
            scope,
            "FailureQueueAlarm",
            metric=self.failure_queue.metric_approximate_number_of_messages_visible(
                period=DEAD_LETTER_ALARM_PERIOD, statistic="Maximum"
            ),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"{path}: stream records were given up on (retries or age exhausted); each "
                "message names the shard and sequence range: fix, then rebuild or replay."
            ),
        )
        self.alarms: list[cloudwatch.Alarm] = [self.iterator_age_alarm, self.failure_alarm]
        for action in alarm_actions:
            for alarm in self.alarms:
                alarm.add_alarm_action(action)

    @staticmethod
    def filter_pattern_criteria(event_types: Sequence[str] | None) -> dict[str, Any]:
        return {"pattern": json.dumps(filter_pattern(event_types), ensure_ascii=False)}

    def _acknowledge_stream_grants(self) -> None:
        role = self.function.role
        policy = role.node.try_find_child("DefaultPolicy") if role else None
        if policy is None:  # pragma: no cover - the event source creates it
            return
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams has no resource-level permission (CDK's DynamoEventSource "
            "grants it on *); every other stream action is limited to this table's stream.",
        )


def filter_pattern(event_types: Sequence[str] | None) -> dict[str, Any]:
    """The Lambda filter: INSERTs (events are never modified), of ``event_types`` if given."""
    pattern: dict[str, Any] = {"eventName": ["INSERT"]}
    if event_types:
        pattern["dynamodb"] = {"NewImage": {kit.ES_EVENT_TYPE: {"S": list(event_types)}}}
    return pattern


class StreamProjector(Construct):
    """A read model maintained from the event store's stream.

    Attributes: ``read_model`` (table keyed by ``aggregateId``), ``function``, ``log_group``,
    ``event_source``, ``filter_pattern``, ``failure_queue``, ``rebuild_table`` /
    ``rebuild_function`` (or None), ``alarms``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        event_store: EventStore,
        code: lambda_.Code,
        handler: str,
        event_types: Sequence[str],
        rebuild_handler: str | None = None,
        environment: Mapping[str, str] | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
        function_timeout: Duration | None = None,
        memory_size: int = MEMORY_SIZE_MB,
        batch_size: int = STREAM_BATCH_SIZE,
        max_batching_window: Duration | None = None,
        parallelization_factor: int = 1,
        bisect_batch_on_error: bool = True,
        retry_attempts: int = STREAM_RETRY_ATTEMPTS,
        max_record_age: Duration | None = None,
        starting_position: lambda_.StartingPosition = lambda_.StartingPosition.TRIM_HORIZON,
        iterator_age_threshold: Duration | None = None,
        log_retention: logs.RetentionDays = LOG_RETENTION,
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param event_store: the store whose stream is projected. Required.
        :param code: the projection's code. Required, with ``handler`` (it must return
            ``batchItemFailures``, e.g. Powertools' ``BatchProcessor(DynamoDBStreams)`` over
            the kit's ``Projection``).
        :param event_types: the event types this read model projects: the mapping's filter,
            so the function is not invoked (nor billed) for the others. Required, non-empty.
        :param rebuild_handler: a handler of ``code`` that replays the store into a fresh
            read model (``REBUILD_TABLE``); a second function and table. Default: none.
        :param environment: extra variables (the kit's ``EVENT_STORE_TABLE`` and
            ``READ_MODEL_TABLE`` are set).
        :param function_timeout: Default: 30 seconds.
        :param batch_size: 1–10,000. Default: 100.
        :param max_batching_window: 0–300 s. Default: none.
        :param parallelization_factor: 1–10. Default: 1 (order per shard).
        :param bisect_batch_on_error: Default: on (a poison record ends up alone).
        :param retry_attempts: 0–10,000. Default: 3 (CDK's default, infinite, is rejected).
        :param max_record_age: 60 s–24 h (the stream's retention). Default: 1 hour.
        :param starting_position: TRIM_HORIZON or LATEST. Default: TRIM_HORIZON.
        :param iterator_age_threshold: Default: 5 minutes.
        :param alarm_actions: Default: none (alarms still created).
        :param removal_policy: read models, queue, log groups. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(bool(event_types), path, "event_types must name at least one event type")
        self.read_model = _table(
            self,
            f"{construct_id}ReadModel",
            sort_key=False,
            key=event_store.encryption_key,
            removal_policy=removal_policy,
            deletion_protection=False,  # rebuildable from the store at any time
        )
        variables = {
            **dict(environment or {}),
            kit.EVENT_STORE_TABLE: event_store.table.table_name,
            kit.READ_MODEL_TABLE: self.read_model.table_name,
        }
        self._stream = _StreamFunction(
            self,
            event_store=event_store,
            code=code,
            handler=handler,
            event_types=event_types,
            environment=variables,
            layers=layers,
            function_timeout=function_timeout,
            memory_size=memory_size,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            parallelization_factor=parallelization_factor,
            bisect_batch_on_error=bisect_batch_on_error,
            retry_attempts=retry_attempts,
            max_record_age=max_record_age,
            starting_position=starting_position,
            iterator_age_threshold=iterator_age_threshold,
            log_retention=log_retention,
            alarm_actions=alarm_actions,
            removal_policy=removal_policy,
        )
        self.function = self._stream.function
        self.log_group = self._stream.log_group
        self.event_source = self._stream.event_source
        self.filter_pattern = self._stream.filter_pattern
        self.failure_queue = self._stream.failure_queue
        self.alarms = self._stream.alarms
        self.read_model.grant(self.function, *READ_MODEL_ACTIONS)
        event_store.grant_read(self.function)  # catch-up reads of missing versions

        self.rebuild_table: dynamodb.Table | None = None
        self.rebuild_function: lambda_.Function | None = None
        if rebuild_handler is not None:
            rebuild = Construct(self, "Rebuild")
            self.rebuild_table = _table(
                rebuild,
                f"{construct_id}RebuildReadModel",
                sort_key=False,
                key=event_store.encryption_key,
                removal_policy=removal_policy,
                deletion_protection=False,
            )
            self.rebuild_function, _ = python_function(
                rebuild,
                id_prefix=f"{construct_id}Rebuild",
                code=code,
                handler=rebuild_handler,
                timeout=Duration.minutes(15),
                memory_size=memory_size,
                environment={
                    **dict(environment or {}),
                    kit.EVENT_STORE_TABLE: event_store.table.table_name,
                    kit.REBUILD_TABLE: self.rebuild_table.table_name,
                },
                layers=layers,
                log_retention=log_retention,
                removal_policy=removal_policy,
                description=f"{path}: replays the event store into a fresh read model",
                encryption_key=event_store.encryption_key,
            )
            checkov_skip(
                self.rebuild_function,
                "CKV_AWS_116",
                "Invoked synchronously by an operator (or a script) to rebuild the read model: "
                "the error is returned to the caller, who reruns it; there is no asynchronous "
                "event for a function DLQ to keep.",
            )
            event_store.grant_read(self.rebuild_function, rebuild=True)
            self.rebuild_table.grant(self.rebuild_function, "dynamodb:PutItem")
            event_store.encryption_key.grant_encrypt_decrypt(self.rebuild_function)
            _acknowledge_key_grant(self.rebuild_function)
        event_store.encryption_key.grant_encrypt_decrypt(self.function)
        _acknowledge_key_grant(self.function)


class OutboxPublisher(Construct):
    """Publishes every event appended to the store on an EventBridge bus, as stored.

    Attributes: ``function``, ``log_group``, ``event_source``, ``filter_pattern``,
    ``failure_queue``, ``alarms``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        event_store: EventStore,
        event_bus: events.IEventBus,
        source: str,
        code: lambda_.Code,
        handler: str,
        event_types: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
        function_timeout: Duration | None = None,
        memory_size: int = MEMORY_SIZE_MB,
        batch_size: int = STREAM_BATCH_SIZE,
        max_batching_window: Duration | None = None,
        bisect_batch_on_error: bool = True,
        retry_attempts: int = STREAM_RETRY_ATTEMPTS,
        max_record_age: Duration | None = None,
        starting_position: lambda_.StartingPosition = lambda_.StartingPosition.TRIM_HORIZON,
        iterator_age_threshold: Duration | None = None,
        log_retention: logs.RetentionDays = LOG_RETENTION,
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param event_store: the store whose appended events are published. Required.
        :param event_bus: where they go. Required.
        :param source: the events' ``source`` (not ``aws.*``: reserved). Required.
        :param code: the publisher's code. Required, with ``handler`` (e.g. the kit's
            ``outbox_handler``).
        :param event_types: publish only these types. Default: every event appended.
        :param parallelization_factor: not offered: 1, so events of one aggregate are put in
            version order.
        :param others: as :class:`StreamProjector`.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(
            bool(source) and not source.startswith("aws."),
            path,
            f"source must be set and must not start with 'aws.' (reserved; got {source!r})",
        )
        require(
            event_types is None or bool(event_types),
            path,
            "event_types must name at least one event type, or be None (every event)",
        )
        self._stream = _StreamFunction(
            self,
            event_store=event_store,
            code=code,
            handler=handler,
            event_types=event_types,
            environment={
                **dict(environment or {}),
                kit.OUTBOX_EVENT_BUS: event_bus.event_bus_name,
                kit.OUTBOX_SOURCE: source,
            },
            layers=layers,
            function_timeout=function_timeout,
            memory_size=memory_size,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            parallelization_factor=1,
            bisect_batch_on_error=bisect_batch_on_error,
            retry_attempts=retry_attempts,
            max_record_age=max_record_age,
            starting_position=starting_position,
            iterator_age_threshold=iterator_age_threshold,
            log_retention=log_retention,
            alarm_actions=alarm_actions,
            removal_policy=removal_policy,
        )
        self.function = self._stream.function
        self.log_group = self._stream.log_group
        self.event_source = self._stream.event_source
        self.filter_pattern = self._stream.filter_pattern
        self.failure_queue = self._stream.failure_queue
        self.alarms = self._stream.alarms
        event_bus.grant_put_events_to(self.function)
        event_store.encryption_key.grant_decrypt(self.function)


def _acknowledge_key_grant(function: lambda_.Function) -> None:
    role = function.role
    policy = role.node.try_find_child("DefaultPolicy") if role else None
    if policy is None:  # pragma: no cover - the grants create it
        return
    for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Action::{action}]",
            "Reading and writing the event store's CMK-encrypted tables: limited to that key.",
        )


def _validate_stream(
    path: str,
    *,
    event_types: Sequence[str] | None,
    batch_size: int,
    max_batching_window: Duration | None,
    parallelization_factor: int,
    retry_attempts: int,
    max_record_age: Duration,
    starting_position: lambda_.StartingPosition,
) -> None:
    for event_type in event_types or ():
        require(
            isinstance(event_type, str) and bool(event_type.strip()),
            path,
            f"event_types must be non-empty strings (got {event_type!r})",
        )
    size = len(json.dumps(filter_pattern(event_types), ensure_ascii=False))
    require(
        size <= MAX_FILTER_PATTERN_CHARS,
        path,
        f"the event-type filter is {size} characters; Lambda allows {MAX_FILTER_PATTERN_CHARS}",
    )
    require(
        starting_position != lambda_.StartingPosition.AT_TIMESTAMP,
        path,
        "DynamoDB Streams mappings start at TRIM_HORIZON or LATEST (AT_TIMESTAMP is Kinesis "
        "only); rebuild a read model from the store instead of replaying the stream",
    )
    if known(batch_size):
        require(
            1 <= batch_size <= 10_000,
            path,
            f"batch_size must be between 1 and 10000 (got {batch_size})",
        )
    window_s = seconds(max_batching_window)
    if window_s is not None:
        require(
            0 <= window_s <= 300,
            path,
            f"max_batching_window must be between 0 and 300 seconds (got {window_s:g})",
        )
    if known(parallelization_factor):
        require(
            1 <= parallelization_factor <= 10,
            path,
            f"parallelization_factor must be between 1 and 10 (got {parallelization_factor})",
        )
    if known(retry_attempts):
        require(
            0 <= retry_attempts <= 10_000,
            path,
            f"retry_attempts must be between 0 and 10000 (got {retry_attempts}): unbounded "
            "retries block the shard until the records expire",
        )
    age_s = seconds(max_record_age)
    if age_s is not None:
        require(
            60 <= age_s <= STREAM_RETENTION_S,
            path,
            f"max_record_age must be between 60 seconds and 24 hours, the stream's retention "
            f"(got {age_s:g} s)",
        )
