"""Tests of the remediation Lambda: CloudWatch alarm -> SNS / EventBridge -> auto-remediation.

Everything AWS runs on moto (the audit table, the DLQ and its source queue) except SQS's
message-move-task APIs, which moto 5.2.5 does not implement: ListMessageMoveTasks and
StartMessageMoveTask are answered by ``MoveTaskStub`` (remediation_support), attached to the
handler's cached SQS client. It records each call's parameters, lets botocore validate them
against the SQS model, and returns a canned response; every other SQS call of that client still
goes to moto. (botocore's Stubber cannot be used for this: once active it answers every
operation of the client, moto's included.)

Alarm notifications are built by factories: the JSON CloudWatch publishes to SNS, wrapped in
the SNS -> Lambda event, and the EventBridge "CloudWatch Alarm State Change" event.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from remediation_support import (
    AUDIT_TABLE,
    DELETE,
    DLQ_ALARM,
    DLQ_ARN,
    DLQ_NAME,
    ERROR_ALARM,
    MISSING_DLQ_ALARM,
    MISSING_ERROR_ALARM,
    REGION,
    REPLAY_ALARM,
    RULES,
    SOURCE_QUEUE_ARN,
    SOURCE_QUEUE_NAME,
    Aws,
    LambdaContext,
    MoveTaskStub,
    alarm_message,
    captured_logs,
    create_audit_table,
    emf_totals,
    eventbridge_event,
    move_task,
    queue_arn,
    sns_event,
)

from tests.support.aws import mocked_aws

# isort: split
# remediation_support (imported above) puts the asset root on sys.path.
import handler_kit.clients
from remediation import handler
from remediation.alarms import MalformedNotification, parse_alarm_message
from remediation.config import (
    DEFAULT_AUDIT_RETENTION_DAYS,
    DEFAULT_REDRIVE_MAX_MESSAGES_PER_SECOND,
    DEFAULT_REDRIVE_MAX_PER_DAY,
    ConfigError,
    QueueArn,
    Rule,
    Settings,
)

OUR_VARIABLES = (
    "REMEDIATION_RULES",
    "REMEDIATION_RULES_PARAMETER",
    "AUDIT_TABLE",
    "REDRIVE_MAX_PER_DAY",
    "REDRIVE_MAX_MESSAGES_PER_SECOND",
    "AUDIT_RETENTION_DAYS",
)
VALID_ENV = {"REMEDIATION_RULES": json.dumps(RULES), "AUDIT_TABLE": AUDIT_TABLE}

# The alarm changes of the tests happen at T0; the handler's clock reads NOW.
T0 = "2026-01-01T12:00:00.000+0000"
T0_KEY = "2026-01-01T12:00:00.000Z"  # T0 as the handler normalises it
NOW = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)


def throttling(code: str = "ProvisionedThroughputExceededException") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "Operation",
    )


def failing_first(real: Callable[..., Any], error: Exception, times: int = 1) -> Callable[..., Any]:
    """A stand-in for a client method that raises ``error`` ``times`` times, then works."""
    calls = {"n": 0}

    def call(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return real(*args, **kwargs)

    return call


def at(moment: datetime) -> str:
    """A CloudWatch StateChangeTime."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def recovered(alarm_name: str = ERROR_ALARM, when: str = T0) -> dict[str, Any]:
    """The SNS event of an error alarm going ALARM -> OK (what triggers a redrive)."""
    return sns_event(alarm_message(alarm_name, "OK", "ALARM", when))


# ==========================================================================================
# Fixtures


@pytest.fixture(autouse=True)
def remediation_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid configuration (RULES); tests change single variables with monkeypatch."""
    for name in OUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in VALID_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def reset_remediation_state() -> Iterator[None]:
    """Forget cached settings, clients and metrics, so each test's env and moto mock apply."""

    def reset() -> None:
        for cached in (
            handler._settings,
            handler._ssm_client,
            handler._sqs_client,
            handler._dynamodb_client,
            handler._audit,
        ):
            cached.cache_clear()
        handler.metrics.clear_metrics()

    reset()
    yield
    reset()


@dataclasses.dataclass
class Clock:
    now: datetime = NOW


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The handler's clock, fixed at NOW; tests move it."""
    state = Clock()
    monkeypatch.setattr(handler, "_now", lambda: state.now)
    return state


@pytest.fixture
def aws(boto3_session: boto3.session.Session) -> Iterator[Aws]:
    """moto DynamoDB (the audit table) and SQS (the DLQ and its source queue), plus the
    move-task stub on the handler's SQS client. The ``legacy`` queues of RULES do not exist.

    Replaces conftest's image-resize ``aws``; reuses its session-wide boto3 session (moto's
    mock resets boto3.DEFAULT_SESSION, re-parsing the service models costs ~0.3 s a test).
    """
    with mocked_aws(boto3_session):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        create_audit_table(dynamodb)
        dlq_url = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
        sqs.create_queue(QueueName=SOURCE_QUEUE_NAME)
        stub = MoveTaskStub().attach(handler._sqs_client(REGION))
        yield Aws(dynamodb=dynamodb, sqs=sqs, dlq_url=dlq_url, move_tasks=stub)


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """For outcomes that must not touch AWS at all: creating any client fails the test."""

    class NoBoto3:
        @staticmethod
        def client(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("no AWS call was expected")

    # Every client of the handler is created by the kit's lazy factories.
    monkeypatch.setattr(handler_kit.clients, "boto3", NoBoto3)


@pytest.fixture
def invoke() -> Callable[[dict[str, Any]], Any]:
    """Call the Lambda entry point the way the runtime does."""
    return lambda event: handler.handler(event, LambdaContext())


@pytest.fixture
def emitted_metrics(capsys: pytest.CaptureFixture[str]) -> Callable[[], dict[str, float]]:
    """Totals by metric name of the EMF blobs printed to stdout since the last read."""
    return lambda: emf_totals(capsys.readouterr().out)


@pytest.fixture
def remediation_logs() -> Iterator[list[dict[str, Any]]]:
    with captured_logs(handler.logger) as logs:
        yield logs


# ==========================================================================================
# config.py


class TestSettings:
    def test_defaults_apply_when_only_required_variables_are_set(self) -> None:
        settings = Settings.from_env(VALID_ENV)

        assert settings.audit_table == AUDIT_TABLE
        assert settings.redrive_max_per_day == DEFAULT_REDRIVE_MAX_PER_DAY == 3
        assert settings.redrive_max_messages_per_second == DEFAULT_REDRIVE_MAX_MESSAGES_PER_SECOND
        assert settings.audit_retention_days == DEFAULT_AUDIT_RETENTION_DAYS == 90
        assert settings.rules[ERROR_ALARM] == Rule(
            alarm_name=ERROR_ALARM,
            action="redrive",
            dead_letter_queue=QueueArn(DLQ_ARN, "aws", REGION, "123456789012", DLQ_NAME),
            source_queue=QueueArn(
                SOURCE_QUEUE_ARN, "aws", REGION, "123456789012", SOURCE_QUEUE_NAME
            ),
        )
        assert settings.rules[DLQ_ALARM].source_queue is None

    def test_every_variable_is_read_and_settings_are_immutable(self) -> None:
        settings = Settings.from_env(
            {
                **VALID_ENV,
                "AUDIT_TABLE": "arn:aws:dynamodb:us-east-1:123456789012:table/audit",
                "REDRIVE_MAX_PER_DAY": "5",
                "REDRIVE_MAX_MESSAGES_PER_SECOND": "500",
                "AUDIT_RETENTION_DAYS": "7",
            }
        )

        assert (
            settings.redrive_max_per_day,
            settings.redrive_max_messages_per_second,
            settings.audit_retention_days,
        ) == (5, 500, 7)
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.redrive_max_per_day = 9  # type: ignore[misc]
        with pytest.raises(TypeError):
            settings.rules["new"] = settings.rules[DLQ_ALARM]  # type: ignore[index]

    @pytest.mark.parametrize("variable", ["REMEDIATION_RULES", "AUDIT_TABLE"])
    @pytest.mark.parametrize("value", [None, "", "  "])
    def test_missing_required_variable_is_a_config_error_naming_it(
        self, variable: str, value: str | None
    ) -> None:
        env = dict(VALID_ENV)
        if value is None:
            del env[variable]
        else:
            env[variable] = value

        with pytest.raises(ConfigError, match=rf"^{variable} is required") as raised:
            Settings.from_env(env)

        assert raised.value.variable == variable

    @pytest.mark.parametrize(
        ("rules", "problem"),
        [
            ("{not json", "is not valid JSON"),
            ('{"a": NaN}', "is not valid JSON"),
            ("[]", "must be a non-empty JSON object"),
            ("{}", "must be a non-empty JSON object"),
            ({"  ": RULES[DLQ_ALARM]}, "has an invalid alarm name"),
            ({"a" * 256: RULES[DLQ_ALARM]}, "has an invalid alarm name"),
            ({"x": "record_incident"}, r"\['x'\] must be an object"),
            ({"x": {"action": "purge", "dead_letter_queue_arn": DLQ_ARN}}, r"action must be"),
            ({"x": {"dead_letter_queue_arn": DLQ_ARN}}, r"\['x'\]\.action must be one of"),
            ({"x": {"action": "record_incident"}}, r"dead_letter_queue_arn must be an SQS"),
            (
                {"x": {"action": "record_incident", "dead_letter_queue_arn": "orders-dlq"}},
                "dead_letter_queue_arn must be an SQS queue ARN",
            ),
            (
                {
                    "x": {
                        "action": "record_incident",
                        "dead_letter_queue_arn": "https://sqs.us-east-1.amazonaws.com/1/q",
                    }
                },
                "dead_letter_queue_arn must be an SQS queue ARN",
            ),
            (
                {
                    "x": {
                        "action": "record_incident",
                        "dead_letter_queue_arn": "arn:aws:sns:us-east-1:123456789012:topic",
                    }
                },
                "dead_letter_queue_arn must be an SQS queue ARN",
            ),
            (
                {"x": {**RULES[DLQ_ALARM], "source_queue_arn": SOURCE_QUEUE_ARN}},
                "unknown keys 'source_queue_arn' for action 'record_incident'",
            ),
            (
                {"x": {**RULES[ERROR_ALARM], "max_per_day": 3}},
                "unknown keys 'max_per_day'",
            ),
            (
                {"x": {"action": "redrive", "dead_letter_queue_arn": DLQ_ARN}},
                "source_queue_arn must be an SQS queue ARN",
            ),
            (
                {"x": {**RULES[ERROR_ALARM], "source_queue_arn": DLQ_ARN}},
                "source_queue_arn and dead_letter_queue_arn are equal",
            ),
            (
                {
                    "x": {
                        **RULES[ERROR_ALARM],
                        "source_queue_arn": "arn:aws:sqs:eu-west-1:123456789012:orders",
                    }
                },
                "same account and region",
            ),
            (
                {"x": {**RULES[ERROR_ALARM], "source_queue_arn": queue_arn("orders.fifo")}},
                "both be FIFO or both be standard",
            ),
        ],
        ids=lambda value: value if isinstance(value, str) else None,
    )
    def test_invalid_rules_are_a_config_error_naming_the_variable(
        self, rules: str | dict[str, Any], problem: str
    ) -> None:
        raw = rules if isinstance(rules, str) else json.dumps(rules)

        with pytest.raises(ConfigError, match=rf"^REMEDIATION_RULES .*{problem}") as raised:
            Settings.from_env({**VALID_ENV, "REMEDIATION_RULES": raw})

        assert raised.value.variable == "REMEDIATION_RULES"

    @pytest.mark.parametrize(
        ("variable", "value", "problem"),
        [
            ("AUDIT_TABLE", "a b", "must be a DynamoDB table name"),
            ("REDRIVE_MAX_PER_DAY", "101", "must be an integer between 0 and 100"),
            ("REDRIVE_MAX_PER_DAY", "-1", "must be an integer between 0 and 100"),
            ("REDRIVE_MAX_PER_DAY", "three", "must be an integer between 0 and 100"),
            ("REDRIVE_MAX_MESSAGES_PER_SECOND", "0", "must be an integer between 1 and 500"),
            ("REDRIVE_MAX_MESSAGES_PER_SECOND", "501", "must be an integer between 1 and 500"),
            ("AUDIT_RETENTION_DAYS", "0", "must be an integer between 1 and 3650"),
            ("AUDIT_RETENTION_DAYS", "1.5", "must be an integer between 1 and 3650"),
        ],
    )
    def test_invalid_value_is_a_config_error_naming_the_variable(
        self, variable: str, value: str, problem: str
    ) -> None:
        with pytest.raises(ConfigError, match=rf"^{variable} {problem}") as raised:
            Settings.from_env({**VALID_ENV, variable: value})

        assert raised.value.variable == variable

    def test_a_cap_of_zero_is_accepted_and_disables_redrives(self) -> None:
        assert Settings.from_env({**VALID_ENV, "REDRIVE_MAX_PER_DAY": "0"}).redrive_max_per_day == 0


def test_invalid_configuration_fails_the_invocation_before_any_aws_call(
    invoke, monkeypatch, emitted_metrics, remediation_logs
) -> None:
    """No moto here: any AWS call would fail with an error other than ConfigError."""
    monkeypatch.setenv("REMEDIATION_RULES", json.dumps({"x": {"action": "purge"}}))

    with pytest.raises(ConfigError) as raised:
        invoke(sns_event(alarm_message()))

    assert raised.value.variable == "REMEDIATION_RULES"
    assert emitted_metrics() == {"NotificationsFailed": 1}
    [log] = [line for line in remediation_logs if line["level"] == "ERROR"]
    assert log["variable"] == "REMEDIATION_RULES"


# ==========================================================================================
# record_incident


@pytest.mark.parametrize(
    "event",
    [sns_event(alarm_message(DLQ_ALARM, "ALARM", "OK", T0)), eventbridge_event(DLQ_ALARM)],
    ids=["sns", "eventbridge"],
)
def test_dlq_alarm_opens_an_incident_with_the_dlq_depth(aws, invoke, emitted_metrics, event):
    aws.send_to_dlq(3)

    response = invoke(event)

    [incident] = aws.incidents()
    assert incident["sk"] == T0_KEY
    assert incident["status"] == "OPEN"
    assert incident["dlqArn"] == DLQ_ARN
    assert incident["dlqDepth"] == 3
    assert incident["dlqMissing"] is False
    assert incident["expiresAt"] == int((NOW + timedelta(days=90)).timestamp())
    [audit] = aws.audit_records(DLQ_ALARM)
    assert (audit["sk"], audit["outcome"], audit["action"]) == (
        T0_KEY,
        "INCIDENT_OPENED",
        "record_incident",
    )
    assert "claimExpiresAt" not in audit
    [result] = response["results"]
    assert result["outcome"] == "INCIDENT_OPENED"
    assert result["dlqDepth"] == 3
    assert emitted_metrics() == {"IncidentsOpened": 1}


def test_rules_can_come_from_an_ssm_parameter(aws, invoke, monkeypatch):
    """The CDK side stores the rules in SSM: Lambda caps environment variables at 4 KB."""
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/conveyor/remediation-rules", Value=json.dumps(RULES), Type="String"
    )
    monkeypatch.delenv("REMEDIATION_RULES")
    monkeypatch.setenv("REMEDIATION_RULES_PARAMETER", "/conveyor/remediation-rules")
    aws.send_to_dlq(2)

    response = invoke(sns_event(alarm_message(DLQ_ALARM, "ALARM")))

    [result] = response["results"]
    assert result["outcome"] == "INCIDENT_OPENED"


def test_a_missing_rules_parameter_is_a_configuration_error(aws, invoke, monkeypatch):
    monkeypatch.delenv("REMEDIATION_RULES")
    monkeypatch.setenv("REMEDIATION_RULES_PARAMETER", "/conveyor/nowhere")

    with pytest.raises(ConfigError, match="REMEDIATION_RULES_PARAMETER"):
        invoke(sns_event(alarm_message(DLQ_ALARM, "ALARM")))


def test_audit_retention_sets_the_ttl_of_every_item(aws, invoke, monkeypatch):
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "7")

    invoke(sns_event(alarm_message(DLQ_ALARM, "ALARM")))

    expected = int((NOW + timedelta(days=7)).timestamp())
    assert {item["expiresAt"] for item in aws.items()} == {expected}


def test_duplicate_notification_records_one_incident(aws, invoke, emitted_metrics):
    event = sns_event(alarm_message(DLQ_ALARM, "ALARM"))
    invoke(event)
    emitted_metrics()

    response = invoke(event)

    assert len(aws.incidents()) == 1
    assert response["results"][0]["outcome"] == "DUPLICATE"
    assert response["results"][0]["previousOutcome"] == "INCIDENT_OPENED"
    assert emitted_metrics() == {"DuplicateNotifications": 1}


def test_same_change_through_sns_and_eventbridge_is_handled_once(aws, invoke, emitted_metrics):
    """Both deliveries name the change by its normalised state change time."""
    invoke(sns_event(alarm_message(DLQ_ALARM, "ALARM", "OK", "2026-01-01T12:00:00.000+0000")))
    invoke(eventbridge_event(DLQ_ALARM, "ALARM", "OK", "2026-01-01T12:00:00.000Z"))

    assert len(aws.incidents()) == 1
    assert emitted_metrics() == {"IncidentsOpened": 1, "DuplicateNotifications": 1}


def test_dlq_alarm_back_to_ok_resolves_the_open_incident(aws, invoke, emitted_metrics):
    invoke(sns_event(alarm_message(DLQ_ALARM, "ALARM", "OK", T0)))
    emitted_metrics()

    response = invoke(
        sns_event(alarm_message(DLQ_ALARM, "OK", "ALARM", "2026-01-01T12:30:00.000+0000"))
    )

    [incident] = aws.incidents()
    assert incident["status"] == "RESOLVED"
    assert incident["resolvedAt"] == "2026-01-01T12:30:00.000Z"
    assert "ALARM -> OK transition" in incident["resolvedReason"]
    assert response["results"][0]["resolvedIncidents"] == [T0_KEY]
    assert [a["outcome"] for a in aws.audit_records(DLQ_ALARM)] == [
        "INCIDENT_OPENED",
        "INCIDENT_RESOLVED",
    ]
    assert emitted_metrics() == {"IncidentsResolved": 1}


def test_ok_resolves_every_incident_left_open_by_a_lost_ok_notification(aws, invoke):
    invoke(sns_event(alarm_message(DLQ_ALARM, "ALARM", "OK", "2026-01-01T10:00:00.000+0000")))
    invoke(sns_event(alarm_message(DLQ_ALARM, "ALARM", "OK", "2026-01-01T11:00:00.000+0000")))

    response = invoke(sns_event(alarm_message(DLQ_ALARM, "OK", "ALARM", T0)))

    assert [i["status"] for i in aws.incidents()] == ["RESOLVED", "RESOLVED"]
    assert len(response["results"][0]["resolvedIncidents"]) == 2


def test_ok_without_an_open_incident_is_recorded_and_counted(aws, invoke, emitted_metrics):
    response = invoke(sns_event(alarm_message(DLQ_ALARM, "OK", "INSUFFICIENT_DATA")))

    assert response["results"][0]["outcome"] == "NO_OPEN_INCIDENT"
    assert aws.incidents() == []
    assert [a["outcome"] for a in aws.audit_records(DLQ_ALARM)] == ["NO_OPEN_INCIDENT"]
    assert emitted_metrics() == {"NoOpenIncident": 1}


def test_dlq_alarm_for_a_deleted_queue_opens_an_incident_of_unknown_depth(
    aws, invoke, emitted_metrics
):
    response = invoke(sns_event(alarm_message(MISSING_DLQ_ALARM, "ALARM")))

    [incident] = aws.incidents(MISSING_DLQ_ALARM)
    assert incident["dlqMissing"] is True
    assert "dlqDepth" not in incident
    assert response["results"][0]["outcome"] == "INCIDENT_OPENED"
    assert emitted_metrics() == {"IncidentsOpened": 1, "QueueMissing": 1}


def test_insufficient_data_is_ignored_by_a_record_incident_rule(no_aws, invoke, emitted_metrics):
    response = invoke(sns_event(alarm_message(DLQ_ALARM, "INSUFFICIENT_DATA", "OK")))

    assert response["results"][0]["outcome"] == "TRANSITION_IGNORED"
    assert emitted_metrics() == {"TransitionsIgnored": 1}


# ==========================================================================================
# redrive


@pytest.mark.parametrize(
    "event",
    [recovered(), eventbridge_event(ERROR_ALARM, "OK", "ALARM")],
    ids=["sns", "eventbridge"],
)
def test_error_alarm_recovery_starts_a_move_task_back_to_the_source_queue(
    aws, invoke, emitted_metrics, event
):
    aws.send_to_dlq(4)

    response = invoke(event)

    assert aws.move_tasks.listed == [{"SourceArn": DLQ_ARN, "MaxResults": 10}]
    assert aws.move_tasks.started == [
        {
            "SourceArn": DLQ_ARN,
            "DestinationArn": SOURCE_QUEUE_ARN,
            "MaxNumberOfMessagesPerSecond": 10,
        }
    ]
    [result] = response["results"]
    assert (result["outcome"], result["taskHandle"], result["dlqDepth"]) == (
        "REDRIVE_STARTED",
        "task-handle-1",
        4,
    )
    [audit] = aws.audit_records(ERROR_ALARM)
    assert (audit["outcome"], audit["taskHandle"]) == ("REDRIVE_STARTED", "task-handle-1")
    [entry] = aws.ledger()
    assert entry["sk"] == f"2026-01-01T12:00:05.000Z#{ERROR_ALARM}"
    assert (entry["taskHandle"], entry["stateChangeTime"]) == ("task-handle-1", T0_KEY)
    assert emitted_metrics() == {"RedrivesStarted": 1}


def test_redrive_rate_is_configurable(aws, invoke, monkeypatch):
    monkeypatch.setenv("REDRIVE_MAX_MESSAGES_PER_SECOND", "250")
    aws.send_to_dlq(1)

    invoke(recovered())

    [call] = aws.move_tasks.started
    assert call["MaxNumberOfMessagesPerSecond"] == 250


def test_same_notification_twice_starts_one_task(aws, invoke, emitted_metrics):
    aws.send_to_dlq(2)
    invoke(recovered())
    emitted_metrics()

    response = invoke(recovered())

    assert len(aws.move_tasks.started) == 1
    assert response["results"][0]["outcome"] == "DUPLICATE"
    assert len(aws.ledger()) == 1
    assert emitted_metrics() == {"DuplicateNotifications": 1}


def test_empty_dlq_is_not_redriven(aws, invoke, emitted_metrics):
    response = invoke(recovered())

    assert aws.move_tasks.listed == []
    assert aws.move_tasks.started == []
    assert response["results"][0]["outcome"] == "REDRIVE_SKIPPED_EMPTY"
    [audit] = aws.audit_records(ERROR_ALARM)
    assert (audit["outcome"], audit["dlqDepth"]) == ("REDRIVE_SKIPPED_EMPTY", 0)
    assert emitted_metrics() == {"RedriveSkippedEmpty": 1}


@pytest.mark.parametrize("status", ["RUNNING", "CANCELLING"])
def test_active_move_task_skips_the_redrive(aws, invoke, emitted_metrics, status):
    aws.send_to_dlq(2)
    aws.move_tasks.tasks = [move_task(status, "console-task")]

    response = invoke(recovered())

    assert aws.move_tasks.started == []
    [result] = response["results"]
    assert (result["outcome"], result["runningTaskHandle"]) == (
        "REDRIVE_SKIPPED_RUNNING",
        "console-task",
    )
    assert aws.audit_records(ERROR_ALARM)[0]["outcome"] == "REDRIVE_SKIPPED_RUNNING"
    assert emitted_metrics() == {"RedriveSkippedRunning": 1}


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "CANCELLED"])
def test_finished_move_tasks_do_not_block_a_redrive(aws, invoke, status):
    aws.send_to_dlq(2)
    aws.move_tasks.tasks = [move_task(status)]

    response = invoke(recovered())

    assert response["results"][0]["outcome"] == "REDRIVE_STARTED"


def test_cap_stops_the_redrive_loop_and_lifts_after_24_hours(
    aws, invoke, clock, emitted_metrics, remediation_logs
):
    """The DLQ stays non-empty (the stub moves nothing), as when messages keep failing."""
    aws.send_to_dlq(5)
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    for hour in range(3):  # the default cap: 3 redrives per rolling 24 h
        clock.now = start + timedelta(hours=hour)
        invoke(recovered(when=at(clock.now)))
    emitted_metrics()

    clock.now = start + timedelta(hours=3)
    capped = invoke(recovered(when=at(clock.now)))

    assert len(aws.move_tasks.started) == 3
    [result] = capped["results"]
    assert (result["outcome"], result["redrivesInLast24h"], result["redriveMaxPerDay"]) == (
        "REDRIVE_SKIPPED_CAP",
        3,
        3,
    )
    audit = aws.audit_records(ERROR_ALARM)[-1]
    assert (audit["outcome"], audit["redrivesInLast24h"]) == ("REDRIVE_SKIPPED_CAP", 3)
    assert emitted_metrics() == {"RedriveSkippedCap": 1}
    [warning] = [line for line in remediation_logs if line["level"] == "WARNING"]
    assert warning["remediation"]["outcome"] == "REDRIVE_SKIPPED_CAP"
    assert warning["alarm_name"] == ERROR_ALARM

    # The first redrive (00:00) leaves the window at 24:00: one more is allowed, not two.
    clock.now = start + timedelta(hours=24, minutes=1)
    allowed = invoke(recovered(when=at(clock.now)))
    clock.now = start + timedelta(hours=24, minutes=2)
    capped_again = invoke(recovered(when=at(clock.now)))

    assert allowed["results"][0]["outcome"] == "REDRIVE_STARTED"
    assert capped_again["results"][0]["outcome"] == "REDRIVE_SKIPPED_CAP"
    assert len(aws.move_tasks.started) == 4


def test_cap_counts_redrives_per_dlq_whatever_the_alarm(aws, invoke, monkeypatch):
    monkeypatch.setenv("REDRIVE_MAX_PER_DAY", "1")
    aws.send_to_dlq(1)
    invoke(recovered(ERROR_ALARM))

    response = invoke(recovered(REPLAY_ALARM))

    assert response["results"][0]["outcome"] == "REDRIVE_SKIPPED_CAP"
    assert len(aws.move_tasks.started) == 1


def test_cap_of_zero_skips_every_redrive(aws, invoke, monkeypatch):
    monkeypatch.setenv("REDRIVE_MAX_PER_DAY", "0")
    aws.send_to_dlq(1)

    response = invoke(recovered())

    assert response["results"][0]["outcome"] == "REDRIVE_SKIPPED_CAP"
    assert aws.move_tasks.started == []


@pytest.mark.parametrize(
    ("old_state", "new_state"),
    [
        ("OK", "OK"),
        ("INSUFFICIENT_DATA", "OK"),
        ("OK", "ALARM"),
        ("INSUFFICIENT_DATA", "ALARM"),
        ("ALARM", "INSUFFICIENT_DATA"),
    ],
)
def test_redrive_rule_ignores_every_transition_but_alarm_to_ok(
    no_aws, invoke, emitted_metrics, old_state, new_state
):
    response = invoke(sns_event(alarm_message(ERROR_ALARM, new_state, old_state)))

    assert response["results"][0]["outcome"] == "TRANSITION_IGNORED"
    assert emitted_metrics() == {"TransitionsIgnored": 1}


def test_eventbridge_change_without_previous_state_is_ignored_by_a_redrive_rule(
    no_aws, invoke, emitted_metrics
):
    response = invoke(eventbridge_event(ERROR_ALARM, "OK", old_state=None))

    assert response["results"][0]["oldState"] is None
    assert emitted_metrics() == {"TransitionsIgnored": 1}


def test_redrive_of_a_deleted_dlq_is_recorded_without_raising(aws, invoke, emitted_metrics):
    response = invoke(recovered(MISSING_ERROR_ALARM))

    assert response["results"][0]["outcome"] == "QUEUE_MISSING"
    assert aws.move_tasks.started == []
    [audit] = aws.audit_records(MISSING_ERROR_ALARM)
    assert (audit["outcome"], audit["queueMissing"]) == ("QUEUE_MISSING", True)
    assert emitted_metrics() == {"QueueMissing": 1}


def test_move_task_refused_for_a_deleted_queue_is_recorded_without_raising(
    aws, invoke, emitted_metrics
):
    aws.send_to_dlq(1)
    aws.move_tasks.start_errors = [("ResourceNotFoundException", 400)]

    response = invoke(recovered())

    assert response["results"][0]["outcome"] == "QUEUE_MISSING"
    assert aws.ledger() == []
    assert aws.audit_records(ERROR_ALARM)[0]["outcome"] == "QUEUE_MISSING"
    assert emitted_metrics() == {"QueueMissing": 1}


# ==========================================================================================
# Unknown alarms and malformed notifications


def test_alarm_without_a_rule_is_counted_and_acknowledged(no_aws, invoke, emitted_metrics):
    response = invoke(sns_event(alarm_message("billing-latency", "ALARM")))

    assert response["results"][0]["outcome"] == "UNKNOWN_ALARM"
    assert response["results"][0]["action"] is None
    assert emitted_metrics() == {"UnknownAlarms": 1}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (sns_event("ALARM: orders-dlq has messages"), "Sns.Message is not JSON"),
        (sns_event("[1, 2]"), "Sns.Message is JSON list, not an object"),
        (sns_event(alarm_message(AlarmName=DELETE)), "AlarmName must be a non-empty string"),
        (sns_event(alarm_message(AlarmName="")), "AlarmName must be a non-empty string"),
        (sns_event(alarm_message(NewStateValue=DELETE)), "NewStateValue must be one of"),
        (sns_event(alarm_message(NewStateValue="WARNING")), "NewStateValue must be one of"),
        (sns_event(alarm_message(OldStateValue="alarm")), "OldStateValue must be one of"),
        (sns_event(alarm_message(StateChangeTime=DELETE)), "StateChangeTime must be a non-empty"),
        (sns_event(alarm_message(StateChangeTime="yesterday")), "StateChangeTime must be an ISO"),
        (
            sns_event(alarm_message(StateChangeTime="2026-01-01T12:00:00")),
            "StateChangeTime must be an ISO 8601 timestamp with an offset",
        ),
        ({"Records": []}, "no non-empty 'Records' list"),
        ({"Records": [{"EventSource": "aws:sqs", "Sns": {}}]}, "EventSource is 'aws:sqs'"),
        ({"Records": [{"body": "{}"}]}, "has no 'Sns' object"),
        (eventbridge_event(detail_type="EC2 Instance State-change"), "detail-type is"),
        (eventbridge_event(source="app.orders"), "EventBridge source is 'app.orders'"),
        (
            {**eventbridge_event(), "detail": {"alarmName": DLQ_ALARM}},
            "detail.state must be an object",
        ),
        ({"alarmData": {}}, "neither an SNS event"),
    ],
    ids=lambda value: None if isinstance(value, dict) else value,
)
def test_malformed_notification_raises_and_is_counted(
    no_aws, invoke, emitted_metrics, remediation_logs, event, reason
):
    with pytest.raises(MalformedNotification, match=reason):
        invoke(event)

    assert emitted_metrics() == {"MalformedNotifications": 1}
    [error] = [line for line in remediation_logs if line["level"] == "ERROR"]
    assert re.search(reason, error["reason"])


def test_one_malformed_record_fails_the_event_before_any_record_is_acted_on(no_aws, invoke):
    event = sns_event(alarm_message(DLQ_ALARM, "ALARM"), "not json")

    with pytest.raises(MalformedNotification, match=r"^Records\[1\]"):
        invoke(event)


def test_every_record_of_an_sns_event_is_handled(aws, invoke):
    event = sns_event(
        alarm_message(DLQ_ALARM, "ALARM", "OK", T0), alarm_message("billing-latency", "ALARM")
    )

    response = invoke(event)

    assert [r["outcome"] for r in response["results"]] == ["INCIDENT_OPENED", "UNKNOWN_ALARM"]


# ==========================================================================================
# Transient errors and concurrent deliveries


def test_dynamodb_throttling_raises_and_the_retry_records_one_incident(
    aws, invoke, monkeypatch, emitted_metrics
):
    client = handler._dynamodb_client()
    monkeypatch.setattr(client, "put_item", failing_first(client.put_item, throttling()))
    event = sns_event(alarm_message(DLQ_ALARM, "ALARM"))

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        invoke(event)

    assert aws.incidents() == []
    [released] = aws.audit_records(DLQ_ALARM)
    assert (released["outcome"], released["claimExpiresAt"]) == ("PENDING", 0)
    assert "ProvisionedThroughputExceeded" in released["lastError"]
    assert emitted_metrics() == {"NotificationsFailed": 1}

    invoke(event)  # Lambda's retry

    assert len(aws.incidents()) == 1
    [audit] = aws.audit_records(DLQ_ALARM)
    assert (audit["outcome"], audit["attempts"]) == ("INCIDENT_OPENED", 2)
    assert emitted_metrics() == {"IncidentsOpened": 1}


def test_dynamodb_throttling_of_the_claim_raises_before_any_action(aws, invoke, monkeypatch):
    client = handler._dynamodb_client()
    monkeypatch.setattr(client, "update_item", failing_first(client.update_item, throttling()))
    aws.send_to_dlq(1)

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        invoke(recovered())

    assert aws.items() == []
    assert aws.move_tasks.listed == []


def test_sqs_throttling_of_the_move_task_raises_and_the_retry_starts_one_task(
    aws, invoke, emitted_metrics
):
    aws.send_to_dlq(2)
    aws.move_tasks.start_errors = [("RequestThrottled", 400)]

    with pytest.raises(ClientError, match="RequestThrottled"):
        invoke(recovered())

    assert aws.ledger() == []
    assert emitted_metrics() == {"NotificationsFailed": 1}

    response = invoke(recovered())  # Lambda's retry

    assert response["results"][0]["outcome"] == "REDRIVE_STARTED"
    assert len(aws.ledger()) == 1
    assert len(aws.move_tasks.started) == 2  # the throttled call and the retry's


def test_sqs_throttling_of_the_depth_read_raises(aws, invoke, monkeypatch, emitted_metrics):
    sqs = handler._sqs_client(REGION)
    monkeypatch.setattr(
        sqs,
        "get_queue_attributes",
        failing_first(sqs.get_queue_attributes, throttling("RequestThrottled")),
    )

    with pytest.raises(ClientError, match="RequestThrottled"):
        invoke(sns_event(alarm_message(DLQ_ALARM, "ALARM")))

    assert aws.incidents() == []
    assert emitted_metrics() == {"NotificationsFailed": 1}


def test_sqs_server_error_listing_tasks_raises(aws, invoke):
    aws.send_to_dlq(1)
    aws.move_tasks.list_errors = [("InternalError", 500)]

    with pytest.raises(ClientError, match="InternalError"):
        invoke(recovered())

    assert aws.move_tasks.started == []


def test_change_claimed_by_a_running_invocation_raises_to_be_retried(aws, invoke, emitted_metrics):
    """A concurrent duplicate delivery must not drop the change: the other invocation may
    still fail. Its claim lasts as long as that invocation can run."""
    change = parse_alarm_message(json.dumps(alarm_message(ERROR_ALARM, "OK", "ALARM")))
    handler._audit().claim(
        change, "redrive", token="other", now=NOW, claim_until=NOW + timedelta(minutes=5)
    )
    aws.send_to_dlq(1)

    with pytest.raises(handler.NotificationInProgress):
        invoke(recovered())

    assert aws.move_tasks.started == []
    assert emitted_metrics() == {"NotificationsInProgress": 1}


def test_claim_of_an_invocation_that_died_expires(aws, invoke, clock):
    change = parse_alarm_message(json.dumps(alarm_message(ERROR_ALARM, "OK", "ALARM")))
    handler._audit().claim(
        change, "redrive", token="dead", now=NOW, claim_until=NOW + timedelta(seconds=30)
    )
    aws.send_to_dlq(1)
    clock.now = NOW + timedelta(seconds=31)

    response = invoke(recovered())

    assert response["results"][0]["outcome"] == "REDRIVE_STARTED"
