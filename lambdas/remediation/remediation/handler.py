"""Lambda handler: CloudWatch alarm -> SNS topic (and/or EventBridge rule) -> this function.

``REMEDIATION_RULES`` says what to do for each alarm name:

* ``record_incident`` (e.g. a "DLQ not empty" alarm): on ALARM, write an incident with the
  DLQ depth; on OK, mark the open incident(s) resolved;
* ``redrive`` (e.g. a consumer error alarm): on ALARM -> OK (the consumer recovered), move the
  DLQ's messages back to the source queue with an SQS message move task - unless the DLQ is
  empty, a move task is already running, or ``REDRIVE_MAX_PER_DAY`` tasks were started for
  that DLQ in the last 24 hours. The cap breaks the loop "redrive -> messages fail again ->
  DLQ -> error alarm -> OK -> redrive...".

Each alarm change ends in exactly one way, with a log line and a metric:

* acted on once, with an audit record (table schema: ``audit.py``): ``IncidentsOpened``,
  ``IncidentsResolved``, ``NoOpenIncident``, ``RedrivesStarted``, ``RedriveSkippedEmpty``,
  ``RedriveSkippedRunning``, ``RedriveSkippedCap``, ``QueueMissing`` (the queue was deleted:
  retrying cannot help, the change is acknowledged);
* acknowledged without action: an alarm without a rule (``UnknownAlarms``), a transition the
  rule does not act on (``TransitionsIgnored``), a notification already handled
  (``DuplicateNotifications``: SNS/EventBridge redelivery, or both subscribed);
* raised, so that Lambda's asynchronous retries and then the function's on-failure
  destination keep the event (configured by the CDK stack): a malformed notification
  (``MalformedNotifications``), a notification another invocation is handling right now
  (``NotificationsInProgress``), an invalid configuration, a transient AWS error (throttling,
  5xx) or an unexpected one (``NotificationsFailed``).

The invocation returns ``{"results": [...]}``: one summary per alarm change.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from handler_kit.clients import lazy_client, lazy_regional_client
from handler_kit.consumer import load_settings, log_invocation_failure, reject_malformed
from handler_kit.failures import error_code, is_queue_missing
from handler_kit.metrics import count, new_metrics

from .alarms import ALARM, OK, AlarmChange, MalformedNotification, format_time, parse_event
from .audit import AuditStore, ClaimStatus, LedgerEntry
from .config import RECORD_INCIDENT, REDRIVE, ConfigError, QueueArn, Rule, Settings
from .contract import (
    MALFORMED_NOTIFICATIONS,
    NOTIFICATIONS_FAILED,
    REMEDIATION_RULES,
    REMEDIATION_RULES_PARAMETER,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = new_metrics()
# Where a rejected event goes once Lambda's asynchronous retries are exhausted.
_DESTINATION = "the function's on-failure destination"
REDRIVE_WINDOW = timedelta(hours=24)
# Move task states during which SQS refuses another task on the same DLQ.
_ACTIVE_TASK_STATUSES = frozenset({"RUNNING", "CANCELLING"})
# How long a claim lasts when the context cannot tell the remaining time (Lambda's maximum).
_DEFAULT_CLAIM_MS = 900_000
_MAX_ERROR_CHARS = 1024


class NotificationInProgress(Exception):
    """Another invocation is handling this alarm change right now; retry later."""


@dataclass(frozen=True)
class Outcome:
    """What was done for one alarm change: logged, counted, audited and returned."""

    name: str
    metric: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    metric_value: int = 1
    extra_metrics: tuple[str, ...] = ()
    warning: bool = False
    ledger: LedgerEntry | None = None


# The work of a rule for one alarm change (claimed already).
_Work = Callable[[AlarmChange, Rule, Settings, datetime], Outcome]


# ---------------------------------------------------------------------------------------------
# Lazily created, cached per execution environment. Nothing AWS is touched at import time, so
# a test's moto mock (started after import) still catches every call.


RULES_PARAMETER_ENV = REMEDIATION_RULES_PARAMETER


@functools.cache
def _settings() -> Settings:
    """Settings from the environment. The rules may instead live in an SSM parameter named by
    ``REMEDIATION_RULES_PARAMETER`` (Lambda caps all environment variables at 4 KB together,
    about 15 rules); it is read once per execution environment."""
    environ = dict(os.environ)
    if REMEDIATION_RULES not in environ and environ.get(RULES_PARAMETER_ENV):
        environ[REMEDIATION_RULES] = _read_rules_parameter(environ[RULES_PARAMETER_ENV])
    return Settings.from_env(environ)


def _read_rules_parameter(name: str) -> str:
    try:
        response = _ssm_client().get_parameter(Name=name)
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            raise ConfigError(RULES_PARAMETER_ENV, f"names a missing parameter {name!r}") from exc
        raise
    return str(response["Parameter"]["Value"])


_ssm_client = lazy_client("ssm")
# One client per region of the configured queues (normally just the function's).
_sqs_client = lazy_regional_client("sqs")
_dynamodb_client = lazy_client("dynamodb")


@functools.cache
def _audit() -> AuditStore:
    settings = _settings()
    return AuditStore(_dynamodb_client(), settings.audit_table, settings.audit_retention_days)


def _now() -> datetime:
    """The clock (tests replace it)."""
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Entry point


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(logger, metrics, _settings, metric=NOTIFICATIONS_FAILED)
    try:
        changes = parse_event(event)
    except MalformedNotification as exc:
        _malformed(str(exc))

    results = []
    for change in changes:
        with logger.append_context_keys(**change.log_keys()):
            try:
                results.append(handle_change(change, settings, context))
            except NotificationInProgress:
                raise  # logged and counted already
            except Exception as exc:
                log_invocation_failure(
                    logger, metrics, exc, metric=NOTIFICATIONS_FAILED, destination=_DESTINATION
                )
                raise
    return {"results": results}


def handle_change(change: AlarmChange, settings: Settings, context: Any) -> dict[str, Any]:
    """Act on one alarm change according to its rule; return its summary."""
    rule = settings.rules.get(change.alarm_name)
    if rule is None:
        return _report(
            change,
            None,
            Outcome(
                "UNKNOWN_ALARM",
                "UnknownAlarms",
                # Normal: the alarm topic also carries alarms that only notify people.
                "Alarm has no remediation rule: nothing to do",
            ),
        )
    work: _Work
    if rule.action == RECORD_INCIDENT and change.new_state == ALARM:
        work = _open_incident
    elif rule.action == RECORD_INCIDENT and change.new_state == OK:
        work = _resolve_incidents
    elif rule.action == REDRIVE and change.old_state == ALARM and change.new_state == OK:
        work = _redrive
    else:
        expected = "ALARM or OK" if rule.action == RECORD_INCIDENT else "ALARM -> OK"
        return _report(
            change,
            rule,
            Outcome(
                "TRANSITION_IGNORED",
                "TransitionsIgnored",
                f"Transition {change.old_state} -> {change.new_state} ignored: the "
                f"{rule.action} rule acts on {expected} only",
            ),
        )
    return _once(change, rule, settings, context, work)


def _once(
    change: AlarmChange, rule: Rule, settings: Settings, context: Any, work: _Work
) -> dict[str, Any]:
    """Run ``work`` at most once per alarm change (alarm name + state change time)."""
    audit = _audit()
    token = uuid.uuid4().hex
    now = _now()
    claim = audit.claim(
        change, rule.action, token=token, now=now, claim_until=now + _claim_duration(context)
    )
    if claim.status is ClaimStatus.IN_PROGRESS:
        logger.warning(
            "Alarm change being handled by another invocation: raising so that Lambda retries "
            "it once that invocation is done",
            extra={"claim_expires_at": (claim.existing or {}).get("claimExpiresAt")},
        )
        count(metrics, "NotificationsInProgress")
        raise NotificationInProgress(f"{change.alarm_name} at {change.state_change_time}")
    if claim.status is ClaimStatus.DUPLICATE:
        previous = (claim.existing or {}).get("outcome")
        return _report(
            change,
            rule,
            Outcome(
                "DUPLICATE",
                "DuplicateNotifications",
                "Duplicate notification: this alarm change was already handled",
                {"previousOutcome": previous},
            ),
        )

    try:
        outcome = work(change, rule, settings, now)
    except Exception as exc:
        _release(change, token, exc)
        raise
    summary = _report(change, rule, outcome)
    audit.complete(
        change,
        token=token,
        outcome=outcome.name,
        details=outcome.details,
        now=_now(),
        ledger=outcome.ledger,
    )
    return summary


# ---------------------------------------------------------------------------------------------
# record_incident


def _open_incident(change: AlarmChange, rule: Rule, settings: Settings, now: datetime) -> Outcome:
    dlq = rule.dead_letter_queue
    depth = _queue_depth(dlq)
    details: dict[str, Any] = {"dlqArn": dlq.arn, "dlqDepth": depth, "dlqMissing": depth is None}
    created = _audit().put_incident(change, dead_letter_queue_arn=dlq.arn, dlq_depth=depth, now=now)
    if not created:
        return Outcome(
            "DUPLICATE",
            "DuplicateNotifications",
            "Incident already recorded for this ALARM transition",
            details,
        )
    if depth is None:
        return Outcome(
            "INCIDENT_OPENED",
            "IncidentsOpened",
            "Incident opened; the DLQ no longer exists, its depth is unknown",
            details,
            extra_metrics=("QueueMissing",),
            warning=True,
        )
    return Outcome("INCIDENT_OPENED", "IncidentsOpened", "Incident opened", details)


def _resolve_incidents(
    change: AlarmChange, rule: Rule, settings: Settings, now: datetime
) -> Outcome:
    audit = _audit()
    opened = audit.open_incidents(change.alarm_name, until=change.state_change_time)
    resolved = [
        opened_at
        for opened_at in opened
        if audit.resolve_incident(change, opened_at=opened_at, now=now)
    ]
    if not resolved:
        return Outcome(
            "NO_OPEN_INCIDENT",
            "NoOpenIncident",
            "Alarm back to OK but no open incident to resolve (never opened, or already resolved)",
            {"dlqArn": rule.dead_letter_queue.arn},
        )
    return Outcome(
        "INCIDENT_RESOLVED",
        "IncidentsResolved",
        f"{len(resolved)} incident(s) resolved",
        {"dlqArn": rule.dead_letter_queue.arn, "resolvedIncidents": resolved},
        metric_value=len(resolved),
    )


# ---------------------------------------------------------------------------------------------
# redrive


def _redrive(change: AlarmChange, rule: Rule, settings: Settings, now: datetime) -> Outcome:
    dlq = rule.dead_letter_queue
    source = rule.source_queue
    if source is None:  # pragma: no cover - Settings requires it for every redrive rule
        raise ConfigError("REMEDIATION_RULES", f"[{rule.alarm_name!r}] has no source queue")
    details: dict[str, Any] = {"dlqArn": dlq.arn, "sourceQueueArn": source.arn}

    depth = _queue_depth(dlq)
    if depth is None:
        return _queue_missing(details, "the DLQ no longer exists")
    details["dlqDepth"] = depth
    if depth == 0:
        return Outcome(
            "REDRIVE_SKIPPED_EMPTY",
            "RedriveSkippedEmpty",
            "DLQ is empty: nothing to redrive",
            details,
        )

    sqs = _sqs_client(dlq.region)
    try:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq.arn, MaxResults=10).get("Results", [])
    except ClientError as exc:
        if is_queue_missing(exc):
            return _queue_missing(details, "the DLQ no longer exists")
        raise
    active = next((t for t in tasks if t.get("Status") in _ACTIVE_TASK_STATUSES), None)
    if active is not None:
        details.update(
            runningTaskHandle=active.get("TaskHandle"), runningTaskStatus=active["Status"]
        )
        return Outcome(
            "REDRIVE_SKIPPED_RUNNING",
            "RedriveSkippedRunning",
            "A message move task is already active for this DLQ: not starting another",
            details,
        )

    recent = _audit().redrives_since(dlq.arn, format_time(now - REDRIVE_WINDOW))
    details.update(redrivesInLast24h=recent, redriveMaxPerDay=settings.redrive_max_per_day)
    if recent >= settings.redrive_max_per_day:
        return Outcome(
            "REDRIVE_SKIPPED_CAP",
            "RedriveSkippedCap",
            "Redrive cap reached for this DLQ: not redriving (the messages probably fail "
            "again; inspect the DLQ)",
            details,
            warning=True,
        )

    rate = settings.redrive_max_messages_per_second
    try:
        response = sqs.start_message_move_task(
            SourceArn=dlq.arn, DestinationArn=source.arn, MaxNumberOfMessagesPerSecond=rate
        )
    except ClientError as exc:
        if is_queue_missing(exc):
            return _queue_missing(details, "the DLQ or the source queue no longer exists")
        raise
    handle = str(response["TaskHandle"])
    started_at = format_time(_now())
    details.update(taskHandle=handle, startedAt=started_at, maxMessagesPerSecond=rate)
    return Outcome(
        "REDRIVE_STARTED",
        "RedrivesStarted",
        "Message move task started: DLQ messages go back to the source queue",
        details,
        ledger=LedgerEntry(
            dead_letter_queue_arn=dlq.arn,
            source_queue_arn=source.arn,
            task_handle=handle,
            started_at=started_at,
            max_messages_per_second=rate,
            dlq_depth=depth,
        ),
    )


def _queue_missing(details: dict[str, Any], why: str) -> Outcome:
    return Outcome(
        "QUEUE_MISSING",
        "QueueMissing",
        f"Nothing redriven: {why} (retrying cannot help)",
        {**details, "queueMissing": True},
        warning=True,
    )


# ---------------------------------------------------------------------------------------------
# SQS


def _queue_depth(queue: QueueArn) -> int | None:
    """ApproximateNumberOfMessages of the queue; None if the queue does not exist."""
    sqs = _sqs_client(queue.region)
    try:
        url = sqs.get_queue_url(QueueName=queue.name, QueueOwnerAWSAccountId=queue.account)[
            "QueueUrl"
        ]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
    except ClientError as exc:
        if is_queue_missing(exc):
            return None
        raise
    return int(attributes["ApproximateNumberOfMessages"])


# ---------------------------------------------------------------------------------------------
# Reporting and failures


def _report(change: AlarmChange, rule: Rule | None, outcome: Outcome) -> dict[str, Any]:
    """Log and count the outcome; return the summary of the alarm change."""
    summary = {
        "alarmName": change.alarm_name,
        "stateChangeTime": change.state_change_time,
        "oldState": change.old_state,
        "newState": change.new_state,
        "delivery": change.delivery,
        "action": None if rule is None else rule.action,
        "outcome": outcome.name,
        **{name: value for name, value in outcome.details.items() if value is not None},
    }
    log = logger.warning if outcome.warning else logger.info
    log(outcome.message, extra={"remediation": summary})
    count(metrics, outcome.metric, outcome.metric_value)
    for extra in outcome.extra_metrics:
        count(metrics, extra)
    return summary


def _release(change: AlarmChange, token: str, exc: Exception) -> None:
    """Best effort: free the claim so that Lambda's retry can act (else it waits for expiry)."""
    try:
        _audit().release(
            change, token=token, error=f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
        )
    except Exception:
        logger.warning("Could not release the claim; it expires on its own", exc_info=True)


def _claim_duration(context: Any) -> timedelta:
    """A claim lasts as long as this invocation can."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    try:
        milliseconds = int(remaining()) if callable(remaining) else _DEFAULT_CLAIM_MS
    except (TypeError, ValueError):
        milliseconds = _DEFAULT_CLAIM_MS
    return timedelta(milliseconds=max(milliseconds, 1_000))


def _malformed(reason: str) -> NoReturn:
    reject_malformed(
        logger,
        metrics,
        reason,
        what="alarm notification",
        metric=MALFORMED_NOTIFICATIONS,
        error=MalformedNotification,
        destination=_DESTINATION,
    )
