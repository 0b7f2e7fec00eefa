"""Alarms that have actions, a dashboard per topology, and auto-remediation.

- :class:`AlarmTopic` — a KMS-encrypted, TLS-only SNS topic CloudWatch may publish to, with
  e-mail and SMS subscribers.
- :class:`Monitoring` — applied to resources (``watch_*``) or to a whole scope
  (:meth:`Monitoring.watch_scope` finds Conveyor's constructs and plain CDK resources), it
  creates alarms with overridable thresholds (:class:`AlarmThresholds`) whose ALARM *and* OK
  transitions go to the alarm topic, and one CloudWatch dashboard.

Built on cdklabs' cdk-monitoring-constructs (``MonitoringFacade``: alarms for queues, Lambda,
SNS, DynamoDB, API Gateway, Step Functions, and the dashboard widgets). What it lacks is written
here: EventBridge rule alarms (failed and dead-lettered invocations), scope discovery of
Conveyor's constructs, and the remediation rules (:class:`Remediation`) that pair each
consumer's DLQ alarm with "record an incident" and its error alarm with "redrive the DLQ".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from cdk_monitoring_constructs import (
    AlarmFactoryDefaults,
    AlarmWithAnnotation,
    DefaultDashboardFactory,
    ErrorCountThreshold,
    IAlarmConsumer,
    LatencyThreshold,
    LatencyTimeoutPercentageThreshold,
    MaxMessageAgeThreshold,
    MaxMessageCountThreshold,
    MonitoringFacade,
    NotificationsFailedThreshold,
    SnsAlarmActionStrategy,
    ThrottledEventsThreshold,
)

from constructs import Construct, IConstruct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.defaults import ARCHITECTURE, FUNCTION_TIMEOUT, RUNTIME
from conveyor.constructs.event_router import EventRouter
from conveyor.constructs.fan_out_topic import FanOutTopic
from conveyor.constructs.functions import AsyncFunction, acknowledge_encrypted_send
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.constructs.python_layer import PythonDependenciesLayer
from conveyor.constructs.queue_consumer import QueueConsumer
from conveyor.constructs.queues import (
    allow_service_to_encrypt,
    dead_letter_alarm,
    dead_letter_queue,
    new_key,
)
from conveyor.constructs.rules import require
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.lambdas.remediation.remediation import contract as remediation

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Idle queues, functions and topics publish no data points: that is not a breach.
_QUIET = cloudwatch.TreatMissingData.NOT_BREACHING


class AlarmTopic(Construct):
    """The topic every alarm of a topology notifies, on ALARM and on OK.

    Attributes: ``topic``, ``encryption_key``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        emails: Sequence[str] = (),
        sms_numbers: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param emails: subscribed addresses (each must confirm). Default: none.
        :param sms_numbers: E.164 numbers (``+33612345678``) for SMS. Default: none.
        :param removal_policy: of the key. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        for number in sms_numbers:
            require(
                bool(_E164.match(number)),
                self.node.path,
                f"SMS number {number!r} must be in E.164 form, e.g. +33612345678",
            )
        self.encryption_key = new_key(
            self,
            "Key",
            description=f"Encrypts {self.node.path}; CloudWatch alarms may use it to publish",
            removal_policy=removal_policy,
        )
        allow_service_to_encrypt(
            self.encryption_key, "cloudwatch.amazonaws.com", sid="AllowCloudWatchAlarmsToPublish"
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.encryption_key, enforce_ssl=True)
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        for number in sms_numbers:
            self.topic.add_subscription(subscriptions.SmsSubscription(number))


@dataclass(frozen=True)
class AlarmThresholds:
    """Thresholds of the alarms :class:`Monitoring` creates; override any of them.

    Counts are per 5-minute period unless noted.
    """

    queue_max_age: Duration = field(default_factory=lambda: Duration.minutes(15))
    queue_max_messages: int = 1000
    function_errors: int = 0  # alarm on more than 0 errors
    function_throttles: int = 0
    function_duration_percent_of_timeout: int = 90  # p99 duration above 90 % of the timeout
    function_iterator_age: Duration = field(default_factory=lambda: Duration.minutes(5))
    topic_failed_notifications: int = 0
    rule_failed_invocations: int = 0
    rule_dead_lettered_invocations: int = 0
    table_throttled_events: int = 0
    api_5xx: int = 0
    api_latency_p99: Duration = field(default_factory=lambda: Duration.seconds(3))
    state_machine_failed_executions: int = 0


@jsii.implements(IAlarmConsumer)
class _Collector:
    """Receives the alarms a MonitoringFacade call creates."""

    def __init__(self) -> None:
        self.alarms: list[AlarmWithAnnotation] = []

    def consume(self, alarms: Sequence[AlarmWithAnnotation]) -> None:
        self.alarms.extend(alarms)


@dataclass(frozen=True)
class RemediationRule:
    """What the remediation function does when ``alarm`` changes state."""

    alarm: cloudwatch.IAlarm
    action: str  # remediation.ACTIONS: "record_incident" | "redrive"
    dead_letter_queue: sqs.IQueue
    source_queue: sqs.IQueue | None = None


class Monitoring(Construct):
    """Alarms with actions and a dashboard for the resources it watches.

    Attributes: ``facade`` (cdk-monitoring-constructs), ``alarms`` (every alarm created or
    adopted), ``remediation_rules``, ``dashboard``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alarm_topic: sns.ITopic,
        dashboard_name: str,
        thresholds: AlarmThresholds | None = None,
    ) -> None:
        """
        :param alarm_topic: notified on ALARM and on OK (remediation needs both).
        :param dashboard_name: the CloudWatch dashboard's name.
        :param thresholds: Default: :class:`AlarmThresholds` defaults.
        """
        super().__init__(scope, construct_id)
        self.alarm_topic = alarm_topic
        self.thresholds = thresholds or AlarmThresholds()
        self._action = SnsAlarmActionStrategy(on_alarm_topic=alarm_topic, on_ok_topic=alarm_topic)
        self.facade = MonitoringFacade(
            self,
            "Facade",
            alarm_factory_defaults=AlarmFactoryDefaults(
                alarm_name_prefix=dashboard_name, actions_enabled=True, action=self._action
            ),
            dashboard_factory=DefaultDashboardFactory(
                self,
                "Dashboards",
                dashboard_name_prefix=dashboard_name,
                create_dashboard=True,
                create_summary_dashboard=False,
                create_alarm_dashboard=False,
            ),
        )
        self.alarms: list[cloudwatch.IAlarm] = []
        self.remediation_rules: list[RemediationRule] = []
        self._watched: set[str] = set()

    @property
    def dashboard(self) -> cloudwatch.Dashboard | None:
        return self.facade.created_dashboard()

    # -- individual resources ------------------------------------------------------------

    def watch_queue_consumer(self, consumer: QueueConsumer, *, name: str | None = None) -> None:
        """Queue age and backlog, the consumer's errors/throttles/duration, the DLQ alarm
        (adopted from the construct, given OK and ALARM actions) and their remediation:
        DLQ alarm → record an incident; error alarm back to OK → redrive the DLQ."""
        if not self._first_time(consumer):
            return
        label = name or consumer.node.id
        t = self.thresholds
        self._adopt(consumer.dead_letter_alarm)
        self._collect(
            lambda c: self.facade.monitor_sqs_queue(
                queue=consumer.queue,
                human_readable_name=f"{label} queue",
                alarm_friendly_name=f"{label}-queue",
                add_queue_max_message_age_alarm={
                    "Warning": MaxMessageAgeThreshold(
                        treat_missing_data_override=_QUIET,
                        max_age_in_seconds=t.queue_max_age.to_seconds(),
                    )
                },
                add_queue_max_size_alarm={
                    "Warning": MaxMessageCountThreshold(
                        treat_missing_data_override=_QUIET, max_message_count=t.queue_max_messages
                    )
                },
                use_created_alarms=c,
            )
        )
        errors = self._watch_function(consumer.function, label, timeout=_timeout(consumer))
        self.facade.monitor_sqs_queue(
            queue=consumer.dead_letter_queue,
            human_readable_name=f"{label} DLQ",
            alarm_friendly_name=f"{label}-dlq",
        )
        self.remediation_rules.append(
            RemediationRule(
                consumer.dead_letter_alarm, remediation.RECORD_INCIDENT, consumer.dead_letter_queue
            )
        )
        if errors is not None:
            self.remediation_rules.append(
                RemediationRule(
                    errors, remediation.REDRIVE, consumer.dead_letter_queue, consumer.queue
                )
            )

    def watch_function(self, function: lambda_.IFunction, *, name: str | None = None) -> None:
        """Errors, throttles and p99 duration near the timeout of a function."""
        if self._first_time(function):
            self._watch_function(function, name or function.node.id, timeout=None)

    def watch_async_function(self, function: AsyncFunction, *, name: str | None = None) -> None:
        """The function's alarms plus its on-failure queue's depth (an incident)."""
        if not self._first_time(function):
            return
        label = name or function.node.id
        self._watch_function(function.function, label, timeout=function.function.timeout)
        alarm = self._dead_letter_alarm(function.failure_queue, f"{label}-failures")
        self.remediation_rules.append(
            RemediationRule(alarm, remediation.RECORD_INCIDENT, function.failure_queue)
        )

    def watch_dead_letter_queue(self, queue: sqs.IQueue, *, name: str | None = None) -> None:
        """Alarm on any message in ``queue``, a dead-letter queue (recorded as an incident).

        :meth:`watch_scope` calls it for the DLQ of every queue that no Conveyor construct
        watches (e.g. a queue whose consumer lives outside the app)."""
        if not self._first_time(queue):
            return
        label = name or queue.node.id
        alarm = self._dead_letter_alarm(queue, label)
        self.remediation_rules.append(RemediationRule(alarm, remediation.RECORD_INCIDENT, queue))

    def watch_topic(self, topic: sns.ITopic, *, name: str | None = None) -> None:
        """Failed notifications (SNS could not deliver, even after retries)."""
        if not self._first_time(topic):
            return
        self._collect(
            lambda c: self.facade.monitor_sns_topic(
                topic=topic,
                human_readable_name=name or topic.node.id,
                alarm_friendly_name=name or topic.node.id,
                add_message_notifications_failed_alarm={
                    "Warning": NotificationsFailedThreshold(
                        treat_missing_data_override=_QUIET,
                        max_notifications_failed_count=self.thresholds.topic_failed_notifications,
                    )
                },
                use_created_alarms=c,
            )
        )

    def watch_fan_out_topic(self, fan_out: FanOutTopic) -> None:
        """The topic, every subscription DLQ and every subscribed consumer."""
        if not self._first_time(fan_out):
            return
        self.watch_topic(fan_out.topic, name=fan_out.node.id)
        for subscriber_id, dlq in fan_out.dead_letter_queues.items():
            alarm = self._dead_letter_alarm(dlq, f"{fan_out.node.id}-{subscriber_id}-dlq")
            self.remediation_rules.append(RemediationRule(alarm, remediation.RECORD_INCIDENT, dlq))

    def watch_event_router(self, router: EventRouter) -> None:
        """Per rule: failed invocations and invocations sent to the DLQ; the DLQ's depth.
        (Not in cdk-monitoring-constructs: written here.)"""
        if not self._first_time(router):
            return
        t = self.thresholds
        for rule_id, rule in router.rules.items():
            for metric_name, threshold, meaning in (
                (
                    "FailedInvocations",
                    t.rule_failed_invocations,
                    "EventBridge could not invoke a target",
                ),
                (
                    "InvocationsSentToDlq",
                    t.rule_dead_lettered_invocations,
                    "events were moved to the router's dead-letter queue",
                ),
            ):
                alarm = cloudwatch.Alarm(
                    self,
                    f"{router.node.id}{rule_id}{metric_name}",
                    alarm_description=f"{router.node.id}/{rule_id}: {meaning}.",
                    metric=cloudwatch.Metric(
                        namespace="AWS/Events",
                        metric_name=metric_name,
                        dimensions_map={
                            "EventBusName": router.bus.event_bus_name,
                            "RuleName": rule.rule_name,
                        },
                        statistic="Sum",
                        period=Duration.minutes(5),
                    ),
                    threshold=threshold,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
                self._adopt(alarm)
        alarm = self._dead_letter_alarm(router.dead_letter_queue, f"{router.node.id}-dlq")
        self.remediation_rules.append(
            RemediationRule(alarm, remediation.RECORD_INCIDENT, router.dead_letter_queue)
        )

    def watch_table(self, table: dynamodb.ITable, *, name: str | None = None) -> None:
        """Read and write throttled events, system errors."""
        if not self._first_time(table):
            return
        threshold = self.thresholds.table_throttled_events
        self._collect(
            lambda c: self.facade.monitor_dynamo_table(
                table=table,
                human_readable_name=name or table.node.id,
                alarm_friendly_name=name or table.node.id,
                add_read_throttled_events_count_alarm={
                    "Warning": ThrottledEventsThreshold(
                        treat_missing_data_override=_QUIET, max_throttled_events_threshold=threshold
                    )
                },
                add_write_throttled_events_count_alarm={
                    "Warning": ThrottledEventsThreshold(
                        treat_missing_data_override=_QUIET, max_throttled_events_threshold=threshold
                    )
                },
                use_created_alarms=c,
            )
        )

    def watch_api(self, api: apigateway.IRestApi, *, name: str | None = None) -> None:
        """5xx faults and p99 latency."""
        if not self._first_time(api):
            return
        t = self.thresholds
        self._collect(
            lambda c: self.facade.monitor_api_gateway(
                api=api,
                human_readable_name=name or api.node.id,
                alarm_friendly_name=name or api.node.id,
                add5_xx_fault_count_alarm={
                    "Critical": ErrorCountThreshold(
                        treat_missing_data_override=_QUIET, max_error_count=t.api_5xx
                    )
                },
                add_latency_p99_alarm={
                    "Warning": LatencyThreshold(
                        treat_missing_data_override=_QUIET, max_latency=t.api_latency_p99
                    )
                },
                use_created_alarms=c,
            )
        )

    def watch_state_machine(self, machine: sfn.IStateMachine, *, name: str | None = None) -> None:
        """Failed, timed-out and aborted executions."""
        if not self._first_time(machine):
            return
        count = self.thresholds.state_machine_failed_executions
        self._collect(
            lambda c: self.facade.monitor_step_function(
                state_machine=machine,
                human_readable_name=name or machine.node.id,
                alarm_friendly_name=name or machine.node.id,
                add_failed_execution_count_alarm={
                    "Critical": ErrorCountThreshold(
                        treat_missing_data_override=_QUIET, max_error_count=count
                    )
                },
                add_timed_out_execution_count_alarm={
                    "Critical": ErrorCountThreshold(
                        treat_missing_data_override=_QUIET, max_error_count=count
                    )
                },
                add_aborted_execution_count_alarm={
                    "Critical": ErrorCountThreshold(
                        treat_missing_data_override=_QUIET, max_error_count=count
                    )
                },
                use_created_alarms=c,
            )
        )

    # -- a whole scope ---------------------------------------------------------------------

    def watch_scope(self, scope: IConstruct) -> None:
        """Watch every supported resource under ``scope``: Conveyor's constructs first (so
        their parts are watched as a whole), then plain functions, topics, tables, APIs and
        state machines, and the DLQ of any other queue that has one. CDK's own singleton
        functions (custom-resource providers) are skipped."""
        nodes = scope.node.find_all()
        for node in nodes:
            if isinstance(node, QueueConsumer):
                self.watch_queue_consumer(node)
            elif isinstance(node, AsyncFunction):
                self.watch_async_function(node)
            elif isinstance(node, FanOutTopic):
                self.watch_fan_out_topic(node)
            elif isinstance(node, EventRouter):
                self.watch_event_router(node)
            elif isinstance(node, IdempotencyTable):
                self.watch_table(node.table, name=node.node.id)
        covered = self._covered_paths()
        labels: set[str] = set()
        for node in nodes:
            if any(node.node.path.startswith(p) for p in covered):
                continue
            if isinstance(node, lambda_.Function) and not _is_cdk_internal(node):
                # Two plain functions with the same id (e.g. "Function" under two
                # constructs): the later one is named after its parent too.
                label = node.node.id
                if label in labels:
                    parent = node.node.scope
                    label = f"{parent.node.id}{label}" if parent is not None else node.node.path
                labels.add(label)
                self.watch_function(node, name=label)
            elif isinstance(node, sns.Topic) and node is not self.alarm_topic:
                self.watch_topic(node)
            elif isinstance(node, dynamodb.TableV2 | dynamodb.Table):
                self.watch_table(node)
            elif isinstance(node, apigateway.RestApi):
                self.watch_api(node)
            elif isinstance(node, sfn.StateMachine):
                self.watch_state_machine(node)
            elif isinstance(node, sqs.Queue) and node.dead_letter_queue is not None:
                # A queue without a consumer construct (read outside the app): its DLQ
                # still gets the alarm every other DLQ has.
                self.watch_dead_letter_queue(
                    node.dead_letter_queue.queue, name=f"{node.node.id}-dlq"
                )

    # -- internals -------------------------------------------------------------------------

    def _first_time(self, resource: IConstruct) -> bool:
        key = resource.node.path
        if key in self._watched:
            return False
        self._watched.add(key)
        return True

    def _covered_paths(self) -> list[str]:
        return [f"{path}/" for path in self._watched]

    def _collect(self, call: Any) -> list[AlarmWithAnnotation]:
        collector = _Collector()
        call(collector)
        self.alarms.extend(a.alarm for a in collector.alarms)
        return collector.alarms

    def _adopt(self, alarm: cloudwatch.Alarm) -> None:
        """An alarm created outside the facade gets the same ALARM and OK actions."""
        action = cw_actions.SnsAction(self.alarm_topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)

    def _watch_function(
        self, function: lambda_.IFunction, label: str, *, timeout: Duration | None
    ) -> cloudwatch.IAlarm | None:
        """Returns the error alarm."""
        t = self.thresholds
        latency: dict[str, Any] = {}
        if timeout is not None:
            latency["add_latency_p99_alarm"] = {
                "Warning": LatencyTimeoutPercentageThreshold(
                    treat_missing_data_override=_QUIET,
                    max_latency_percentage_of_timeout=t.function_duration_percent_of_timeout,
                )
            }
        created = self._collect(
            lambda c: self.facade.monitor_lambda_function(
                lambda_function=function,
                human_readable_name=f"{label} function",
                alarm_friendly_name=f"{label}-function",
                add_fault_count_alarm={
                    "Critical": ErrorCountThreshold(
                        treat_missing_data_override=_QUIET, max_error_count=t.function_errors
                    )
                },
                add_throttles_count_alarm={
                    "Warning": ErrorCountThreshold(
                        treat_missing_data_override=_QUIET, max_error_count=t.function_throttles
                    )
                },
                use_created_alarms=c,
                **latency,
            )
        )
        errors = [a.alarm for a in created if a.disambiguator == "Critical"]
        return errors[0] if errors else None

    def _dead_letter_alarm(self, queue: sqs.IQueue, label: str) -> cloudwatch.Alarm:
        alarm = dead_letter_alarm(
            self,
            f"{label}DepthAlarm".replace("-", ""),
            queue=queue,
            description=(
                f"{label}: messages are waiting in a dead-letter queue. Inspect them, fix the "
                "cause, then redrive."
            ),
        )
        self._adopt(alarm)
        return alarm


def _timeout(consumer: QueueConsumer) -> Duration | None:
    timeout = getattr(consumer.function, "timeout", None)
    return timeout if isinstance(timeout, Duration) else None


def _is_cdk_internal(function: lambda_.Function) -> bool:
    """Singleton providers CDK adds (bucket notifications, auto-delete, log retention…)."""
    return function.node.scope is Stack.of(function) and function.node.id.startswith(
        ("BucketNotificationsHandler", "Custom::", "LogRetention", "SingletonLambda")
    )


# The remediation handler ships with Conveyor: constructs/ and lambdas/ are siblings both in
# the repo and in the installed package.
REMEDIATION_ASSET = LAMBDAS_DIR / "remediation"


class Remediation(Construct):
    """A function subscribed to the alarm topic that acts on alarm state changes.

    For each :class:`RemediationRule`: ``record_incident`` writes an incident when the alarm
    fires and resolves it when it clears; ``redrive`` starts an SQS message-move task from the
    DLQ back to its source queue when the consumer's error alarm returns to OK — at most
    ``redrive_max_per_day`` times per DLQ in 24 hours (the loop breaker: messages that fail
    again return to the DLQ), at ``redrive_messages_per_second``. Every action is idempotent
    and written to the audit table.

    Attributes: ``function`` (AsyncFunction), ``audit_table``, ``rules_parameter``,
    ``subscription_dead_letter_queue`` (alarm notifications SNS could not deliver to it).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alarm_topic: sns.ITopic,
        rules: Sequence[RemediationRule],
        redrive_max_per_day: int = 3,
        redrive_messages_per_second: int = 10,
        audit_retention_days: int = 90,
        layer_cache_dir: Path | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param alarm_topic: the topic the alarms notify (ALARM and OK).
        :param rules: usually ``Monitoring.remediation_rules``.
        :param redrive_max_per_day: redrives per DLQ per rolling 24 h, 1–24. Default: 3.
        :param redrive_messages_per_second: move-task rate, 1–500. Default: 10.
        :param audit_retention_days: TTL of audit items. Default: 90.
        :param layer_cache_dir: see ``PythonDependenciesLayer``.
        :param removal_policy: audit table, logs and failure queue. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(1 <= redrive_max_per_day <= 24, path, "redrive_max_per_day must be 1–24")
        require(
            1 <= redrive_messages_per_second <= 500,
            path,
            "redrive_messages_per_second must be 1–500 (the SQS move-task limit)",
        )
        require(audit_retention_days >= 1, path, "audit_retention_days must be at least 1")
        self.audit_table = dynamodb.TableV2(
            self,
            "AuditTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal_policy,
        )
        layer = PythonDependenciesLayer(
            self,
            "Dependencies",
            requirements_file=REMEDIATION_ASSET / "requirements.txt",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            description="Powertools for the alarm remediation function",
            cache_dir=layer_cache_dir,
        )
        stack = Stack.of(self)
        rules_json = stack.to_json_string(
            {
                rule.alarm.alarm_name: {
                    "action": rule.action,
                    "dead_letter_queue_arn": rule.dead_letter_queue.queue_arn,
                    **(
                        {"source_queue_arn": rule.source_queue.queue_arn}
                        if rule.source_queue is not None
                        else {}
                    ),
                }
                for rule in rules
            }
        )
        # Lambda caps all environment variables at 4 KB together (~15 rules): the rules live
        # in a parameter, standard or advanced tier as its resolved size requires.
        self.rules_parameter = ssm.StringParameter(
            self,
            "Rules",
            description=f"Remediation rules of {path}, keyed by alarm name",
            string_value=rules_json,
            tier=ssm.ParameterTier.INTELLIGENT_TIERING,
        )
        self.function = AsyncFunction(
            self,
            "Function",
            code=handler_code(REMEDIATION_ASSET),
            handler=remediation.HANDLER,
            layers=[layer.layer],
            timeout=FUNCTION_TIMEOUT,
            environment={
                remediation.REMEDIATION_RULES_PARAMETER: self.rules_parameter.parameter_name,
                remediation.AUDIT_TABLE: self.audit_table.table_name,
                remediation.REDRIVE_MAX_PER_DAY: str(redrive_max_per_day),
                remediation.REDRIVE_MAX_MESSAGES_PER_SECOND: str(redrive_messages_per_second),
                remediation.AUDIT_RETENTION_DAYS: str(audit_retention_days),
                kit.POWERTOOLS_SERVICE_NAME: "alarm-remediation",
                kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/Remediation",
            },
            removal_policy=removal_policy,
        )
        function = self.function.function
        self.rules_parameter.grant_read(function)
        # PutItem/UpdateItem also authorise the handler's TransactWriteItems.
        self.audit_table.grant(
            function, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"
        )
        for rule in rules:
            rule.dead_letter_queue.grant(function, "sqs:GetQueueAttributes", "sqs:GetQueueUrl")
            if rule.action == remediation.REDRIVE:
                assert rule.source_queue is not None
                # A move task reads and deletes from the DLQ and sends to the source queue
                # with the caller's permissions (and keys).
                rule.dead_letter_queue.grant_consume_messages(function)
                rule.dead_letter_queue.grant(
                    function, "sqs:StartMessageMoveTask", "sqs:ListMessageMoveTasks"
                )
                rule.source_queue.grant_send_messages(function)
        # SNS retries a Lambda endpoint it cannot invoke (throttled, deleted, no permission)
        # and then drops the notification unless the subscription has a DLQ.
        self.subscription_dead_letter_queue = dead_letter_queue(
            self,
            "SubscriptionDeadLetterQueue",
            key=self.function.encryption_key,
            removal_policy=removal_policy,
        )
        allow_service_to_encrypt(
            self.function.encryption_key,
            "sns.amazonaws.com",
            source_arn=alarm_topic.topic_arn,
            sid="AllowTheAlarmTopicToEncryptDeadLetters",
        )
        alarm_topic.add_subscription(
            subscriptions.LambdaSubscription(
                function, dead_letter_queue=self.subscription_dead_letter_queue
            )
        )
        if any(rule.action == remediation.REDRIVE for rule in rules):
            acknowledge_encrypted_send(function, "the source queues it redrives to")
