"""The handler kit: transient classification, settings parsing, DLQ sends, the SQS consumer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from handler_kit import clients, consumer, dead_letter, failures, settings
from handler_kit.consumer import SqsConsumer
from handler_kit.dead_letter import DeadLetterQueue
from handler_kit.settings import ConfigError

from tests.support.aws import REGION, fake_aws_env, mocked_aws
from tests.support.events import sqs_event, sqs_record, sqs_string_attribute
from tests.support.lambda_context import LambdaContext
from tests.support.observability import captured_logs, emf_totals

NAMESPACE = "HandlerKitTest"
SERVICE = "handler-kit-test"


def client_error(code: str, status: int = 400, **response: Any) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        | response,
        "Operation",
    )


# ---------------------------------------------------------------------------------------------
# failures


@pytest.mark.parametrize(
    "code",
    sorted(failures.TRANSIENT_ERROR_CODES),
)
def test_every_listed_code_is_transient_even_with_a_4xx_status(code: str) -> None:
    assert failures.is_transient(client_error(code, 400))


@pytest.mark.parametrize(
    "code",
    # One per family the five handlers used to know separately.
    [
        "SlowDown",  # S3 (image_resize)
        "RequestThrottled",  # SQS (remediation)
        "AWS.SimpleQueueService.RequestThrottled",
        "TransactionInProgressException",  # DynamoDB (remediation)
        "ProvisionedThroughputExceededException",  # DynamoDB (all)
        "KMSThrottlingException",  # KMS (order_events, order_pipeline)
        "InternalServerError",
    ],
)
def test_the_union_of_the_former_code_lists_is_transient(code: str) -> None:
    assert code in failures.TRANSIENT_ERROR_CODES


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_any_5xx_is_transient(status: int) -> None:
    assert failures.is_transient(client_error("Whatever", status))


def test_connection_and_read_timeout_errors_are_transient() -> None:
    assert failures.is_transient(EndpointConnectionError(endpoint_url="https://sqs"))
    assert failures.is_transient(ReadTimeoutError(endpoint_url="https://sqs"))


@pytest.mark.parametrize(
    "error",
    [
        client_error("AccessDenied", 403),
        client_error("ValidationException", 400),
        client_error("ConditionalCheckFailedException", 400),
        RuntimeError("boom"),
        ValueError("bad"),
    ],
    ids=["access-denied", "validation", "condition", "runtime", "value"],
)
def test_permanent_errors_are_not_transient(error: Exception) -> None:
    assert not failures.is_transient(error)


def test_a_transaction_cancelled_by_throttling_or_a_conflict_is_transient() -> None:
    for reason in ("ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"):
        error = client_error(
            "TransactionCanceledException",
            CancellationReasons=[{"Code": "None"}, {"Code": reason}],
        )
        assert failures.is_transient(error), reason


def test_a_transaction_cancelled_by_its_condition_is_not_transient() -> None:
    error = client_error(
        "TransactionCanceledException",
        CancellationReasons=[{"Code": "ConditionalCheckFailed"}, {"Code": "None"}, "junk"],
    )
    assert not failures.is_transient(error)


def _raise_while_handling(error: Exception, *, suppress: bool) -> None:
    try:
        raise error
    except ClientError as exc:
        if suppress:
            raise RuntimeError("raised while handling") from None
        raise RuntimeError("wrapped") from exc


def _wrapped(error: Exception, *, suppress: bool) -> BaseException:
    """``RuntimeError`` raised while handling ``error``: from it, or with only __context__."""
    with pytest.raises(RuntimeError) as raised:
        _raise_while_handling(error, suppress=suppress)
    return raised.value


def test_a_wrapped_transient_error_is_followed_through_cause_and_context() -> None:
    assert failures.is_transient(_wrapped(client_error("ThrottlingException"), suppress=False))
    chained = _wrapped(client_error("SlowDown", 503), suppress=True)
    assert chained.__cause__ is None
    assert failures.is_transient(chained)


def test_a_cause_cycle_ends_without_a_verdict_of_transient() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__, second.__cause__ = second, first
    assert not failures.is_transient(first)


def test_queue_missing_recognises_the_modeled_and_the_legacy_codes() -> None:
    assert failures.is_queue_missing(client_error("AWS.SimpleQueueService.NonExistentQueue"))
    legacy = client_error("Other")
    legacy.response["Error"]["QueryErrorCode"] = "QueueDoesNotExist"
    assert failures.is_queue_missing(legacy)
    assert failures.is_queue_missing(client_error("ResourceNotFoundException"))
    assert not failures.is_queue_missing(client_error("AccessDenied", 403))


def test_conditional_check_failed_and_the_response_readers() -> None:
    assert failures.is_conditional_check_failed(client_error("ConditionalCheckFailedException"))
    assert not failures.is_conditional_check_failed(client_error("Throttling"))
    bare = ClientError({}, "Operation")
    assert (failures.error_code(bare), failures.http_status(bare)) == ("", 0)


# ---------------------------------------------------------------------------------------------
# settings


def test_a_missing_or_blank_required_variable_is_named() -> None:
    for environ in ({}, {"TABLE": "   "}):
        with pytest.raises(ConfigError, match=r"^TABLE is required but is not set$") as raised:
            settings.required(environ, "TABLE")
        assert raised.value.variable == "TABLE"


def test_choice_names_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"^MODE must be one of a, b, got 'c'$"):
        settings.choice({"MODE": "c"}, "MODE", ("a", "b"))
    assert settings.choice({"MODE": " b "}, "MODE", ("a", "b")) == "b"


@pytest.mark.parametrize("raw", ["0", "-1", "1h", "1.5", "+3", "12345678901", "1 2"])
def test_positive_int_rejects_what_the_one_integer_rule_rejects(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^SECONDS must be a positive integer \(seconds\)"):
        settings.positive_int({"SECONDS": raw}, "SECONDS", 5, unit="seconds")


def test_positive_int_default_and_value() -> None:
    assert settings.positive_int({}, "N", 7) == 7
    assert settings.positive_int({"N": "9999999999"}, "N", 7) == 9_999_999_999
    with pytest.raises(ConfigError, match=r"^N must be a positive integer, got '0'$"):
        settings.positive_int({"N": "0"}, "N", 7)


def test_int_between_checks_both_bounds() -> None:
    assert settings.int_between({"N": "0"}, "N", 3, 0, 10) == 0
    assert settings.int_between({}, "N", 3, 0, 10) == 3
    for raw in ("11", "-1", "x"):
        with pytest.raises(ConfigError, match=r"^N must be an integer between 0 and 10"):
            settings.int_between({"N": raw}, "N", 3, 0, 10)


def test_table_accepts_a_name_or_an_arn() -> None:
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders"
    assert settings.table({"T": arn}, "T") == arn
    assert settings.table({"T": "orders.v1"}, "T") == "orders.v1"
    assert settings.optional_table({}, "T") is None
    for raw in ("ab", "a b", "arn:aws:s3:::bucket"):
        with pytest.raises(ConfigError, match=r"^T must be a DynamoDB table name or table ARN"):
            settings.table({"T": raw}, "T")


def test_queue_url_and_fifo_queue_url() -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo"
    assert settings.queue_url({}, "Q") is None
    assert settings.queue_url({"Q": url}, "Q", fifo=True) == url
    for raw in ("orders", "arn:aws:sqs:us-east-1:123456789012:q", "https://sqs/"):
        with pytest.raises(ConfigError, match=r"^Q must be an SQS queue URL"):
            settings.queue_url({"Q": raw}, "Q")
    with pytest.raises(ConfigError, match=r"^Q must be the URL of a FIFO queue"):
        settings.queue_url({"Q": url.removesuffix(".fifo")}, "Q", fifo=True)


def test_bucket_name_rejects_urls_and_arns() -> None:
    assert settings.bucket_name({"B": "my-bucket.1"}, "B") == "my-bucket.1"
    for raw in ("s3://my-bucket", "arn:aws:s3:::my-bucket", "My-Bucket", "ab"):
        with pytest.raises(ConfigError, match=r"^B must be a bucket name"):
            settings.bucket_name({"B": raw}, "B")


def test_cached_settings_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    class Example:
        calls = 0

        @classmethod
        def from_env(cls, environ: Any) -> str:
            cls.calls += 1
            return str(environ["EXAMPLE"])

    monkeypatch.setenv("EXAMPLE", "one")
    load = settings.cached_settings(Example)
    assert (load(), load(), Example.calls) == ("one", "one", 1)
    monkeypatch.setenv("EXAMPLE", "two")
    load.cache_clear()
    assert load() == "two"


# ---------------------------------------------------------------------------------------------
# Observability and AWS fixtures


@pytest.fixture
def logger() -> Logger:
    return Logger(service=SERVICE)


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Metrics]:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.clear_metrics()
    yield metrics
    metrics.clear_metrics()


@pytest.fixture
def logs(logger: Logger) -> Iterator[list[dict[str, Any]]]:
    with captured_logs(logger) as captured:
        yield captured


@pytest.fixture(scope="session")
def boto3_session() -> boto3.session.Session:
    return boto3.session.Session()


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch, boto3_session: boto3.session.Session) -> Iterator[Any]:
    fake_aws_env(monkeypatch)
    with mocked_aws(boto3_session):
        yield boto3.client("sqs", region_name=REGION)


def counted(metrics: Metrics) -> dict[str, float]:
    """The metrics added so far (not flushed)."""
    return {name: sum(entry["Value"]) for name, entry in metrics.metric_set.items()}


def test_lazy_clients_touch_nothing_until_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[tuple[str, Any]] = []

    class Boto3:
        @staticmethod
        def client(service: str, **options: Any) -> object:
            created.append((service, options))
            return object()

    monkeypatch.setattr(clients, "boto3", Boto3)
    sqs_client = clients.lazy_client("sqs")
    regional = clients.lazy_regional_client("sqs")
    assert created == []
    assert sqs_client() is sqs_client()
    assert regional("eu-west-1") is regional("eu-west-1") is not regional("us-east-1")
    assert [service for service, _ in created] == ["sqs", "sqs", "sqs"]
    assert all(options["config"].retries == {"mode": "standard"} for _, options in created)
    assert created[1][1]["region_name"] == "eu-west-1"


# ---------------------------------------------------------------------------------------------
# dead_letter


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    return sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages", [])


def test_a_standard_dlq_copy_keeps_body_and_attributes_plus_the_reason(
    sqs: Any, logger: Logger, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    record = sqs_record(
        '{"broken"',
        "m-1",
        message_attributes={
            "eventType": sqs_string_attribute("OrderPlaced"),
            "priority": sqs_string_attribute("3", "Number"),
            "blob": {"binaryValue": "AA==", "dataType": "Binary"},
            "ErrorReason": sqs_string_attribute("spoofed"),
        },
    )
    queue = DeadLetterQueue(logger, metrics, lambda: sqs)

    queue.send(SQSRecord(record), "body is not JSON", ValueError("x"), url)

    [message] = received(sqs, url)
    assert message["Body"] == '{"broken"'
    attributes = {
        name: (value["DataType"], value["StringValue"])
        for name, value in message["MessageAttributes"].items()
    }
    assert attributes == {
        "ErrorReason": ("String", "body is not JSON"),
        "SourceMessageId": ("String", "m-1"),
        "eventType": ("String", "OrderPlaced"),
        "priority": ("Number", "3"),
    }
    assert counted(metrics) == {"MessagesDeadLettered": 1}
    [warning] = logs
    assert warning["message"] == "Poison message sent to the dead-letter queue"
    assert warning["reason"] == "body is not JSON"


def test_the_dlq_copy_has_at_most_ten_attributes_and_a_truncated_reason() -> None:
    original = {f"a{n:02}": sqs_string_attribute(str(n)) for n in range(12)}
    record = sqs_record("x", "m-1", message_attributes=original)

    attributes = dead_letter.dead_letter_attributes(record, "r" * 5000)

    assert len(attributes) == dead_letter.MAX_MESSAGE_ATTRIBUTES == 10
    assert list(attributes)[2:] == [f"a{n:02}" for n in range(8)]
    assert len(attributes["ErrorReason"]["StringValue"]) == dead_letter.MAX_ERROR_REASON_CHARS


def test_a_fifo_dlq_copy_keeps_the_group_and_is_deduplicated_by_message_id(
    sqs: Any, logger: Logger, metrics: Metrics
) -> None:
    url = sqs.create_queue(QueueName="dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    queue = DeadLetterQueue(logger, metrics, lambda: sqs, fifo=True)
    grouped = sqs_record("a", "m-1", group_id="customer-1")

    queue.send(SQSRecord(grouped), "out of order", ValueError("x"), url)
    queue.send(
        SQSRecord(grouped), "out of order", ValueError("x"), url
    )  # a redelivery: deduplicated
    queue.send(SQSRecord(sqs_record("b", "m-2")), "no group", ValueError("x"), url)

    messages = received(sqs, url)
    assert [(m["Body"], m["Attributes"]["MessageGroupId"]) for m in messages] == [
        ("a", "customer-1"),
        ("b", "m-2"),
    ]
    assert messages[0]["Attributes"]["MessageDeduplicationId"] == "m-1"


def test_without_a_dlq_the_given_error_is_raised_and_nothing_counted(
    logger: Logger, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    error = ValueError("poison")
    queue = DeadLetterQueue(logger, metrics, lambda: pytest.fail("no client expected"))

    with pytest.raises(ValueError, match="poison") as raised:
        queue.send(SQSRecord(sqs_record("x")), "r" * 2000, error, None)

    assert raised.value is error
    assert counted(metrics) == {}
    [line] = logs
    assert line["level"] == "ERROR"
    assert line["message"].startswith("Poison message and no DEAD_LETTER_QUEUE_URL: failing it")
    assert len(line["reason"]) == dead_letter.MAX_ERROR_REASON_CHARS


def test_a_failed_send_raises_the_error_so_the_record_becomes_a_batch_failure(
    sqs: Any, logger: Logger, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    missing = f"https://sqs.{REGION}.amazonaws.com/123456789012/missing"
    queue = DeadLetterQueue(logger, metrics, lambda: sqs, label="Malformed message")

    with pytest.raises(ValueError, match="bad") as raised:
        queue.send(SQSRecord(sqs_record("x")), "bad", ValueError("bad"), missing)

    assert isinstance(raised.value.__cause__, ClientError)
    assert counted(metrics) == {}
    assert logs[0]["message"].startswith("Malformed message could not be sent")


# ---------------------------------------------------------------------------------------------
# consumer


class Poison(Exception):
    """Logged by the record logic itself."""


@pytest.fixture
def make_consumer(
    logger: Logger, metrics: Metrics
) -> Callable[..., tuple[SqsConsumer[dict[str, str]], Callable[..., Any]]]:
    def make(
        handle: Callable[[Any, dict[str, str]], Any] | None,
        load: Callable[[], dict[str, str]] = lambda: {"mode": "ok"},
        **options: Any,
    ) -> tuple[SqsConsumer[dict[str, str]], Callable[..., Any]]:
        kit = SqsConsumer(
            logger, metrics, load, BatchProcessor(event_type=EventType.SQS), **options
        )
        if handle is not None:
            kit.record_logic(logged_errors=(Poison,), log_keys=("order_id",))(handle)
        return kit, kit.lambda_handler()

    return make


def fail_on(*bodies: str) -> Callable[[Any, dict[str, str]], None]:
    def handle(record: Any, _settings: dict[str, str]) -> None:
        logger = Logger(service=SERVICE)
        logger.append_keys(order_id=record.body)
        if record.body in bodies:
            raise {"poison": Poison, "throttled": lambda: client_error("Throttling")}.get(
                record.body, RuntimeError
            )()

    return handle


def test_partial_failures_are_reported_and_counted(
    make_consumer: Callable[..., Any],
    logs: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, handler = make_consumer(fail_on("boom", "throttled", "poison"))
    event = sqs_event(
        *(
            sqs_record(body, f"m-{n}")
            for n, body in enumerate(["ok", "boom", "throttled", "poison"])
        )
    )

    response = handler(event, LambdaContext())

    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": "m-1"},
            {"itemIdentifier": "m-2"},
            {"itemIdentifier": "m-3"},
        ]
    }
    assert emf_totals(capsys.readouterr().out, namespace=NAMESPACE) == {"RecordsFailed": 3}
    failures_logged = {log["message_id"]: (log["level"], log["message"]) for log in logs}
    assert failures_logged == {
        "m-1": (
            "ERROR",
            "Unexpected error: the message will be retried, then dead-lettered by the queue's "
            "redrive policy",
        ),
        "m-2": ("WARNING", "Transient error: the message will be retried"),
    }, "the poison record's error is not logged again"
    assert all("order_id" not in log or log["message_id"] for log in logs)


def test_record_log_keys_are_removed_after_each_record(
    make_consumer: Callable[..., Any], logger: Logger, logs: list[dict[str, Any]]
) -> None:
    seen: list[object] = []

    def handle(record: Any, _settings: dict[str, str]) -> None:
        seen.append(logger.get_current_keys().get("order_id"))
        logger.append_keys(order_id=record.body)
        seen.append(logger.get_current_keys().get("message_id"))

    _, handler = make_consumer(None)
    kit, handler = make_consumer(handle)
    handler(sqs_event(sqs_record("a", "m-0"), sqs_record("b", "m-1")), LambdaContext())

    assert seen == [None, "m-0", None, "m-1"]
    assert kit.record_log_keys == ("order_id",)


def test_when_every_record_fails_the_invocation_raises(
    make_consumer: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    finished: list[bool] = []
    _, handler = make_consumer(fail_on("a", "b"), finish=lambda: finished.append(True))

    with pytest.raises(BatchProcessingError):
        handler(sqs_event(sqs_record("a", "m-0"), sqs_record("b", "m-1")), LambdaContext())

    assert emf_totals(capsys.readouterr().out) == {"RecordsFailed": 2}
    assert finished == [True], "finish runs also when the whole batch failed"


def test_an_invalid_configuration_fails_the_whole_batch_counting_every_record(
    make_consumer: Callable[..., Any],
    logs: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken() -> dict[str, str]:
        raise ConfigError("ORDERS_TABLE", "is required but is not set")

    called: list[object] = []
    _, handler = make_consumer(lambda record, _: called.append(record), load=broken)
    event = sqs_event(*(sqs_record("x", f"m-{n}") for n in range(3)))

    with pytest.raises(ConfigError, match=r"^ORDERS_TABLE is required"):
        handler(event, LambdaContext())

    assert called == []
    assert emf_totals(capsys.readouterr().out) == {"RecordsFailed": 3}
    [error] = logs
    assert error["message"] == "Invalid configuration: failing the whole batch"
    assert error["variable"] == "ORDERS_TABLE"


def test_prepare_sees_the_settings_and_the_context(make_consumer: Callable[..., Any]) -> None:
    prepared: list[tuple[object, object]] = []
    context = LambdaContext()
    _, handler = make_consumer(
        fail_on(), prepare=lambda settings, ctx: prepared.append((settings, ctx))
    )

    handler(sqs_event(sqs_record("ok")), context)

    assert prepared == [({"mode": "ok"}, context)]


def test_a_consumer_without_record_logic_fails_its_records(
    make_consumer: Callable[..., Any],
) -> None:
    kit, _ = make_consumer(None)
    with pytest.raises(TypeError, match="no record logic"):
        kit.record_handler(SQSRecord(sqs_record("x")))


def test_record_count_of_anything_that_is_not_a_batch_is_zero() -> None:
    assert consumer.record_count({"Records": [1, 2]}) == 2
    assert consumer.record_count({"Records": "x"}) == consumer.record_count(None) == 0


def test_asynchronous_failures_are_counted_and_logged_by_kind(
    logger: Logger, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    consumer.log_invocation_failure(logger, metrics, client_error("SlowDown"), metric="Failed")
    consumer.log_invocation_failure(
        logger, metrics, RuntimeError("x"), metric="Failed", destination="the DLQ"
    )

    assert counted(metrics) == {"Failed": 2}
    assert [(log["level"], log["message"]) for log in logs] == [
        ("WARNING", "Transient error: raising so that Lambda retries the event"),
        (
            "ERROR",
            "Unexpected error: raising, Lambda retries the event and then sends it to the DLQ",
        ),
    ]


def test_reject_malformed_logs_counts_and_raises(
    logger: Logger, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    with pytest.raises(Poison, match=r"^no detail$"):
        consumer.reject_malformed(
            logger, metrics, "no detail", what="event", metric="MalformedEvents", error=Poison
        )

    assert counted(metrics) == {"MalformedEvents": 1}
    assert logs[0]["message"].startswith("Malformed event: raising, Lambda retries the event")
    assert logs[0]["reason"] == "no detail"
