"""EventRouter: an EventBridge custom bus with content-filtered rules and resilient targets.

Choreography from the course: producers put events on a bus; rules whose patterns use the
content-filtering operators (equals, prefix, suffix, anything-but, numeric ranges, exists,
wildcard, ``$or``…) route them to targets. Correct by default:

- every pattern is validated at synth — a misspelt operator is an error, not a rule that
  silently matches everything (or nothing); a top-level field outside the event envelope
  (EventBridge accepts it, a custom PutEvents event never has it) is a synth warning
  (``conveyor:pattern-outside-envelope``);
- every target gets a retry policy (maximum event age, attempts) and the router's standard-SQS
  dead-letter queue, encrypted with a customer-managed key EventBridge may use for this
  router's rules only;
- optional: an archive with a retention (replay documented in the README), schema discovery,
  and a bus policy letting *listed* accounts put events — never everyone.

Targets are described with :class:`Target` (``Target.function(...)``, ``Target.queue(...)``,
``Target.topic(...)``,
``Target.state_machine(...)``, ``Target.bus(...)``, ``Target.api_destination(...)``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aws_cdk import Annotations, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_eventschemas as eventschemas
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from constructs import Construct
from conveyor.constructs.defaults import RULE_TARGET_MAX_EVENT_AGE, RULE_TARGET_RETRY_ATTEMPTS
from conveyor.constructs.filters import validate_event_pattern
from conveyor.constructs.queues import allow_service_to_encrypt, dead_letter_queue, new_key
from conveyor.constructs.rules import require, seconds

PATTERN_WARNING_ID = "conveyor:pattern-outside-envelope"
MAX_TARGETS_PER_RULE = 5
MAX_RETRY_ATTEMPTS = RULE_TARGET_RETRY_ATTEMPTS
MAX_EVENT_AGE_S = 24 * 3600
MIN_EVENT_AGE_S = 60
_ACCOUNT = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class Target:
    """One rule target. Build it with the class methods; ``input`` is an optional
    ``events.RuleTargetInput`` (e.g. an input transformer from ``RuleTargetInput.from_object``
    with ``EventField`` paths)."""

    kind: str
    resource: Any
    input: events.RuleTargetInput | None = None
    message_group_id: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def function(
        cls, function: lambda_.IFunction, *, input: events.RuleTargetInput | None = None
    ) -> Target:
        return cls("function", function, input)

    @classmethod
    def queue(
        cls,
        queue: sqs.IQueue,
        *,
        message_group_id: str | None = None,
        input: events.RuleTargetInput | None = None,
    ) -> Target:
        """An SQS queue; a FIFO queue needs ``message_group_id``."""
        return cls("queue", queue, input, message_group_id)

    @classmethod
    def topic(cls, topic: sns.ITopic, *, input: events.RuleTargetInput | None = None) -> Target:
        return cls("topic", topic, input)

    @classmethod
    def state_machine(
        cls, machine: sfn.IStateMachine, *, input: events.RuleTargetInput | None = None
    ) -> Target:
        """A Step Functions state machine: each event starts an execution (input: the event)."""
        return cls("state_machine", machine, input)

    @classmethod
    def bus(cls, bus: events.IEventBus) -> Target:
        """Another event bus (same or another account/region)."""
        return cls("bus", bus)

    @classmethod
    def api_destination(
        cls,
        *,
        endpoint: str,
        secret: secretsmanager.ISecret,
        api_key_header: str = "x-api-key",
        http_method: events.HttpMethod = events.HttpMethod.POST,
        rate_limit_per_second: int | None = None,
        input: events.RuleTargetInput | None = None,
    ) -> Target:
        """An HTTPS webhook. The API key is read from ``secret`` (Secrets Manager) by a
        dynamic reference at deploy time: it never appears in the template."""
        return cls(
            "api_destination",
            secret,
            input,
            options={
                "endpoint": endpoint,
                "api_key_header": api_key_header,
                "http_method": http_method,
                "rate_limit_per_second": rate_limit_per_second,
            },
        )


class EventRouter(Construct):
    """A custom event bus, its rules and their targets.

    Attributes: ``bus``, ``dead_letter_queue`` (shared by all targets), ``encryption_key``
    (of the DLQ), ``rules`` (id → Rule), ``archive`` (or None), ``discoverer`` (or None).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        event_bus_name: str | None = None,
        archive_retention: Duration | None = None,
        archive_pattern: Mapping[str, Any] | None = None,
        schema_discovery: bool = False,
        allowed_accounts: Sequence[str] = (),
        max_event_age: Duration | None = None,
        retry_attempts: int = MAX_RETRY_ATTEMPTS,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """Create the bus and its dead-letter queue.

        :param event_bus_name: Default: generated.
        :param archive_retention: archive the bus's events for this long (``Duration.days(0)``
            would mean forever and is refused: say how long). Default: no archive.
        :param archive_pattern: which events to archive. Default: every event of the bus.
        :param schema_discovery: infer schemas of the events on the bus into the schema
            registry (costs per ingested event beyond the free tier). Default: off.
        :param allowed_accounts: 12-digit account ids allowed to ``events:PutEvents`` on the
            bus (cross-account routing). Default: none — only this account.
        :param max_event_age: default target retry window, 60 s–24 h. Default: 24 hours.
        :param retry_attempts: default target retry attempts, 0–185. Default: 185.
        :param encryption_key: key of the dead-letter queue. Default: a new customer-managed
            key EventBridge may use for this router's rules.
        :param removal_policy: DLQ, key and archive. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        self._max_event_age = max_event_age or RULE_TARGET_MAX_EVENT_AGE
        self._retry_attempts = retry_attempts
        _validate_retry(path, self._max_event_age, retry_attempts)
        for account in allowed_accounts:
            require(
                bool(_ACCOUNT.match(account)),
                path,
                f"allowed_accounts: {account!r} is not a 12-digit account id (a bus policy "
                "open to '*' would let anyone inject events)",
            )
        if archive_pattern is not None:
            require(archive_retention is not None, path, "archive_pattern needs archive_retention")
            archive_warnings = validate_event_pattern(archive_pattern, where=f"{path}/Archive")
        if archive_retention is not None:
            days = seconds(archive_retention)
            require(
                days is None or days >= 86400,
                path,
                "archive_retention must be at least one day",
            )

        self.bus = events.EventBus(self, "Bus", event_bus_name=event_bus_name)
        stack = Stack.of(self)
        self.encryption_key: kms.IKey = encryption_key or new_key(
            self,
            "Key",
            description=f"Encrypts the dead-letter queue of the event router {path}",
            removal_policy=removal_policy,
        )
        allow_service_to_encrypt(
            self.encryption_key,
            "events.amazonaws.com",
            source_arn=stack.format_arn(
                service="events", resource="rule", resource_name=f"{self.bus.event_bus_name}/*"
            ),
            sid="AllowEventBridgeRulesToEncryptDeadLetters",
        )
        self.dead_letter_queue = dead_letter_queue(
            self, "DeadLetterQueue", key=self.encryption_key, removal_policy=removal_policy
        )

        for account in allowed_accounts:
            self.bus.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"AllowPutEventsFrom{account}",
                    principals=[iam.AccountPrincipal(account)],
                    actions=["events:PutEvents"],
                    resources=[self.bus.event_bus_arn],
                )
            )

        self.archive: events.Archive | None = None
        if archive_retention is not None:
            self.archive = events.Archive(
                self,
                "Archive",
                source_event_bus=self.bus,
                description=f"Events of {path}, replayable with StartReplay",
                retention=archive_retention,
                event_pattern=events.EventPattern(account=[stack.account]),
            )
            self.archive.apply_removal_policy(removal_policy)
            if archive_pattern is not None:
                cfn_archive = cast(events.CfnArchive, self.archive.node.default_child)
                cfn_archive.event_pattern = dict(archive_pattern)
                _warn(self.archive, archive_warnings)

        self.discoverer: eventschemas.CfnDiscoverer | None = None
        if schema_discovery:
            self.discoverer = eventschemas.CfnDiscoverer(
                self,
                "Discoverer",
                source_arn=self.bus.event_bus_arn,
                description=f"Schema discovery for {path}",
                cross_account=bool(allowed_accounts),
            )

        self.rules: dict[str, events.Rule] = {}

    def add_rule(
        self,
        rule_id: str,
        *,
        pattern: Mapping[str, Any],
        targets: Sequence[Target],
        description: str | None = None,
        max_event_age: Duration | None = None,
        retry_attempts: int | None = None,
    ) -> events.Rule:
        """Route events matching ``pattern`` (EventBridge JSON syntax, validated) to up to five
        ``targets``, each with the retry policy and the router's DLQ."""
        path = f"{self.node.path}/{rule_id}"
        require(rule_id not in self.rules, path, "duplicate rule id")
        require(
            1 <= len(targets) <= MAX_TARGETS_PER_RULE,
            path,
            f"a rule has 1 to {MAX_TARGETS_PER_RULE} targets (got {len(targets)})",
        )
        warnings = validate_event_pattern(pattern, where=path)
        age = max_event_age or self._max_event_age
        attempts = self._retry_attempts if retry_attempts is None else retry_attempts
        _validate_retry(path, age, attempts)

        rule = events.Rule(
            self,
            rule_id,
            event_bus=self.bus,
            description=description,
            # Placeholder so the L2 accepts the rule; the validated JSON pattern replaces it.
            event_pattern=events.EventPattern(source=["conveyor.placeholder"]),
        )
        cast(events.CfnRule, rule.node.default_child).event_pattern = dict(pattern)
        _warn(rule, warnings)
        for index, target in enumerate(targets):
            rule.add_target(self._bind(f"{path}/targets[{index}]", rule_id, target, age, attempts))
        self.rules[rule_id] = rule
        return rule

    def _bind(
        self, where: str, rule_id: str, target: Target, age: Duration, attempts: int
    ) -> events.IRuleTarget:
        common: dict[str, Any] = {
            "dead_letter_queue": self.dead_letter_queue,
            "max_event_age": age,
            "retry_attempts": attempts,
        }
        if target.kind == "function":
            return targets.LambdaFunction(target.resource, event=target.input, **common)
        if target.kind == "queue":
            queue = cast(sqs.IQueue, target.resource)
            require(
                not queue.fifo or target.message_group_id is not None,
                where,
                "a FIFO queue target needs message_group_id",
            )
            require(
                queue.fifo or target.message_group_id is None,
                where,
                "message_group_id applies to FIFO queues only",
            )
            return targets.SqsQueue(
                queue, message=target.input, message_group_id=target.message_group_id, **common
            )
        if target.kind == "topic":
            return targets.SnsTopic(target.resource, message=target.input, **common)
        if target.kind == "state_machine":
            return targets.SfnStateMachine(target.resource, input=target.input, **common)
        if target.kind == "bus":
            # CDK exposes no retry policy for bus targets: EventBridge's default applies
            # (24 hours, 185 attempts); failures still land in the DLQ.
            return targets.EventBus(target.resource, dead_letter_queue=self.dead_letter_queue)
        if target.kind == "api_destination":
            return self._api_destination(where, rule_id, target, common)
        raise ValueError(f"{where}: unknown target kind {target.kind!r}")  # pragma: no cover

    def _api_destination(
        self, where: str, rule_id: str, target: Target, common: dict[str, Any]
    ) -> events.IRuleTarget:
        options = target.options
        endpoint = str(options["endpoint"])
        require(endpoint.startswith("https://"), where, f"endpoint must be https:// ({endpoint})")
        rate = options.get("rate_limit_per_second")
        require(
            rate is None or 1 <= int(rate) <= 300,
            where,
            "rate_limit_per_second must be between 1 and 300",
        )
        secret = cast(secretsmanager.ISecret, target.resource)
        connection = events.Connection(
            self,
            f"{rule_id}Connection",
            description=f"Authorization for {endpoint}",
            authorization=events.Authorization.api_key(
                str(options["api_key_header"]),
                SecretValue.secrets_manager(secret.secret_arn),
            ),
        )
        destination = events.ApiDestination(
            self,
            f"{rule_id}Destination",
            connection=connection,
            endpoint=endpoint,
            http_method=options["http_method"],
            rate_limit_per_second=rate,
        )
        return targets.ApiDestination(destination, event=target.input, **common)


def _validate_retry(path: str, max_event_age: Duration, retry_attempts: int) -> None:
    age = seconds(max_event_age)
    if age is not None:
        require(
            MIN_EVENT_AGE_S <= age <= MAX_EVENT_AGE_S,
            path,
            f"max_event_age must be between 60 seconds and 24 hours (got {age:g} s)",
        )
    require(
        0 <= retry_attempts <= MAX_RETRY_ATTEMPTS,
        path,
        f"retry_attempts must be between 0 and {MAX_RETRY_ATTEMPTS} (got {retry_attempts})",
    )


def _warn(scope: Construct, warnings: Sequence[str]) -> None:
    """The validator's warnings on a pattern, as synth warnings (``cdk synth`` prints them;
    ``--strict`` makes them errors; acknowledge one with ``Annotations.acknowledge_warning``)."""
    for warning in warnings:
        Annotations.of(scope).add_warning_v2(PATTERN_WARNING_ID, warning)
