"""Tests of the payments Lambdas: the high-value review target of the payments bus (moto)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyPersistenceLayerError,
)
from botocore.exceptions import ClientError
from payments import review
from payments.config import (
    DEFAULT_IDEMPOTENCY_SECONDS,
    DEFAULT_REVIEW_THRESHOLD,
    ConfigError,
    ReviewSettings,
)
from payments_support import (
    DELETE,
    IDEMPOTENCY_TABLE,
    REGION,
    Aws,
    LambdaContext,
    captured_logs,
    create_idempotency_table,
    eventbridge_event,
    facture,
    idempotency_key,
    with_field,
)

from tests.support.aws import mocked_aws

OUR_VARIABLES = (
    "IDEMPOTENCY_TABLE",
    "REVIEW_THRESHOLD",
    "IDEMPOTENCY_EXPIRES_AFTER_SECONDS",
    "POWERTOOLS_IDEMPOTENCY_DISABLED",
    "AWS_LAMBDA_FUNCTION_NAME",
)


# ==========================================================================================
# Fixtures


@pytest.fixture(autouse=True)
def payments_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY_TABLE)


@pytest.fixture(autouse=True)
def reset_review_state() -> Iterator[None]:
    """Forget cached settings, client, idempotent function and metrics between tests."""

    def reset() -> None:
        review._settings.cache_clear()
        review._dynamodb_client.cache_clear()
        review._idempotency_config.cache_clear()
        review._review_once.cache_clear()
        review.metrics.clear_metrics()

    reset()
    yield
    reset()


@pytest.fixture
def aws(boto3_session: boto3.session.Session) -> Iterator[Aws]:
    """moto DynamoDB with the idempotency table (replaces conftest's image-resize ``aws``)."""
    with mocked_aws(boto3_session):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_idempotency_table(dynamodb)
        yield Aws(dynamodb=dynamodb)


@pytest.fixture
def invoke() -> Callable[[Any], Any]:
    """Call the entry point the way the runtime does."""
    return lambda event: review.handler(event, LambdaContext(function_name="payments-review"))


@pytest.fixture
def reviews(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """factureId of every review actually requested (the work, not a duplicate's replay)."""
    requested: list[str] = []
    real = review._request_review

    def request_review(*, facture: dict[str, Any], event_id: str | None) -> dict[str, Any]:
        requested.append(facture["factureId"])
        return real(facture=facture, event_id=event_id)

    monkeypatch.setattr(review, "_request_review", request_review)
    return requested


@pytest.fixture
def review_logs() -> Iterator[list[dict[str, Any]]]:
    with captured_logs(review.logger) as logs:
        yield logs


def throttled_put_item(client: Any) -> Callable[..., Any]:
    real = client.put_item
    calls = {"n": 0}

    def put_item(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClientError(
                {
                    "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "PutItem",
            )
        return real(**kwargs)

    return put_item


# ==========================================================================================
# config.py


class TestReviewSettings:
    def test_defaults_apply_when_only_the_table_is_set(self) -> None:
        assert ReviewSettings.from_env({"IDEMPOTENCY_TABLE": "idem"}) == ReviewSettings(
            idempotency_table="idem",
            review_threshold=Decimal(5000),
            idempotency_expires_after_seconds=DEFAULT_IDEMPOTENCY_SECONDS,
        )
        assert DEFAULT_REVIEW_THRESHOLD == 5000

    def test_every_variable_is_read(self) -> None:
        env = {
            "IDEMPOTENCY_TABLE": "idem",
            "REVIEW_THRESHOLD": "10000.50",
            "IDEMPOTENCY_EXPIRES_AFTER_SECONDS": "120",
        }

        assert ReviewSettings.from_env(env) == ReviewSettings("idem", Decimal("10000.50"), 120)

    def test_settings_are_immutable(self) -> None:
        settings = ReviewSettings.from_env({"IDEMPOTENCY_TABLE": "idem"})

        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.review_threshold = Decimal(0)  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("variable", "value", "problem"),
        [
            ("IDEMPOTENCY_TABLE", None, "is required"),
            ("IDEMPOTENCY_TABLE", " ", "is required"),
            ("IDEMPOTENCY_TABLE", "my table", "must be a DynamoDB table name"),
            ("REVIEW_THRESHOLD", "-1", "must be a non-negative decimal"),
            ("REVIEW_THRESHOLD", "5k", "must be a non-negative decimal"),
            ("REVIEW_THRESHOLD", "NaN", "must be a non-negative decimal"),
            ("IDEMPOTENCY_EXPIRES_AFTER_SECONDS", "-5", "must be a positive integer"),
        ],
    )
    def test_invalid_variable_is_a_config_error_naming_it(
        self, variable: str, value: str | None, problem: str
    ) -> None:
        env = {"IDEMPOTENCY_TABLE": "idem"}
        if value is None:
            del env[variable]
        else:
            env[variable] = value

        with pytest.raises(ConfigError, match=rf"^{variable} {problem}") as raised:
            ReviewSettings.from_env(env)

        assert raised.value.variable == variable


# ==========================================================================================
# review.py: processing


def test_high_value_invoice_is_sent_for_review(aws, invoke, emitted_metrics, reviews) -> None:
    result = invoke(eventbridge_event(facture("f-1", montant=6000)))

    assert result == {"factureId": "f-1", "montant": 6000, "status": "PENDING_REVIEW"}
    assert reviews == ["f-1"]
    records = aws.idempotency_records()
    assert list(records) == [idempotency_key(review.IDEMPOTENCY_KEY_PREFIX, "f-1")]
    assert records[idempotency_key(review.IDEMPOTENCY_KEY_PREFIX, "f-1")]["data"] == result
    assert emitted_metrics() == {"HighValueReviewsRequested": 1}


def test_review_request_is_a_structured_log_line(aws, invoke, review_logs) -> None:
    invoke(eventbridge_event(facture("f-1", montant=7500.25), event_id="evt-42"))

    [requested] = [log for log in review_logs if log["message"] == "Review requested"]
    assert requested["review"] == {
        "factureId": "f-1",
        "montant": 7500.25,
        "devise": "EUR",
        "client": "c-1",
        "status": "PENDING_REVIEW",
        "event_id": "evt-42",
    }
    assert (requested["facture_id"], requested["source"]) == ("f-1", "app.paiement")


@pytest.mark.parametrize(
    ("montant", "reviewed"),
    [(5000, False), (5000.0, False), (4999.99, False), (5000.01, True), (5001, True)],
)
def test_only_montants_above_the_threshold_are_reviewed(
    aws, invoke, emitted_metrics, reviews, montant, reviewed
) -> None:
    result = invoke(eventbridge_event(facture("f-1", montant=montant)))

    if reviewed:
        assert result == {"factureId": "f-1", "montant": montant, "status": "PENDING_REVIEW"}
        assert reviews == ["f-1"]
        assert emitted_metrics() == {"HighValueReviewsRequested": 1}
    else:
        assert result == {
            "factureId": "f-1",
            "montant": montant,
            "status": "IGNORED_BELOW_THRESHOLD",
        }
        assert reviews == []
        assert aws.idempotency_records() == {}
        assert emitted_metrics() == {"BelowThresholdIgnored": 1}


def test_review_threshold_is_configurable(aws, invoke, monkeypatch, reviews) -> None:
    monkeypatch.setenv("REVIEW_THRESHOLD", "10000")

    low = invoke(eventbridge_event(facture("f-1", montant=9000)))
    high = invoke(eventbridge_event(facture("f-2", montant=10000.5)))

    assert (low["status"], high["status"]) == ("IGNORED_BELOW_THRESHOLD", "PENDING_REVIEW")
    assert reviews == ["f-2"]


def test_missing_version_and_client_are_accepted(aws, invoke, reviews) -> None:
    detail = with_field(with_field(facture("f-1"), "version", DELETE), "client", DELETE)

    assert invoke(eventbridge_event(detail))["status"] == "PENDING_REVIEW"


def test_newer_minor_version_is_processed_ignoring_unknown_fields(
    aws, invoke, emitted_metrics, reviews
) -> None:
    detail = facture("f-1", version="1.4", echeance="2026-02-01", lignes=[{"x": 1}])

    assert invoke(eventbridge_event(detail))["status"] == "PENDING_REVIEW"

    assert reviews == ["f-1"]
    assert emitted_metrics() == {"HighValueReviewsRequested": 1, "NewerMinorVersionProcessed": 1}


def test_duplicate_event_requests_one_review_and_returns_the_same_result(
    aws, invoke, emitted_metrics, reviews
) -> None:
    event = eventbridge_event(facture("f-1"))

    first = invoke(event)
    second = invoke(event)

    assert first == second == {"factureId": "f-1", "montant": 6000, "status": "PENDING_REVIEW"}
    assert reviews == ["f-1"]
    assert emitted_metrics() == {"HighValueReviewsRequested": 1, "DuplicatesSkipped": 1}


def test_same_facture_in_another_event_is_reviewed_once(aws, invoke, reviews) -> None:
    """Keyed by factureId, not by the EventBridge event id (e.g. a re-put by the producer)."""
    invoke(eventbridge_event(facture("f-1"), event_id="evt-1"))
    invoke(eventbridge_event(facture("f-1"), event_id="evt-2"))
    invoke(eventbridge_event(facture("f-2"), event_id="evt-3"))

    assert reviews == ["f-1", "f-2"]


def test_clients_and_settings_are_created_once_and_reused(aws, invoke) -> None:
    assert review._dynamodb_client.cache_info().currsize == 0, "no client before an event"

    invoke(eventbridge_event(facture("f-1")))
    invoke(eventbridge_event(facture("f-2")))

    assert review._dynamodb_client.cache_info().misses == 1
    assert review._settings.cache_info().misses == 1


# ==========================================================================================
# review.py: every bad input has a defined outcome


@pytest.mark.parametrize("detail_type", ["avoir", "Facture", "paiement"])
def test_other_detail_type_is_dropped_logged_and_counted(
    aws, invoke, emitted_metrics, review_logs, reviews, detail_type
) -> None:
    assert invoke(eventbridge_event(facture(), detail_type=detail_type)) is None

    assert reviews == []
    assert emitted_metrics() == {"UnknownEventTypesIgnored": 1}
    [warning] = [log for log in review_logs if log["level"] == "WARNING"]
    assert warning["detail_type"] == detail_type


VALID = facture("f-1")


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        pytest.param("f-1", "detail must be an object", id="detail-str"),
        pytest.param([VALID], "detail must be an object", id="detail-list"),
        pytest.param({}, "detail.factureId", id="empty"),
        pytest.param(with_field(VALID, "factureId", DELETE), "detail.factureId", id="no-id"),
        pytest.param(with_field(VALID, "factureId", ""), "detail.factureId", id="empty-id"),
        pytest.param(with_field(VALID, "factureId", 17), "detail.factureId", id="id-int"),
        pytest.param(with_field(VALID, "montant", DELETE), "detail.montant", id="no-montant"),
        pytest.param(with_field(VALID, "montant", "6000"), "detail.montant", id="montant-str"),
        pytest.param(with_field(VALID, "montant", True), "detail.montant", id="montant-bool"),
        pytest.param(with_field(VALID, "montant", 0), "detail.montant", id="montant-zero"),
        pytest.param(with_field(VALID, "montant", -6000), "detail.montant", id="montant-neg"),
        pytest.param(
            with_field(VALID, "montant", float("inf")), "detail.montant", id="montant-inf"
        ),
        pytest.param(with_field(VALID, "devise", DELETE), "detail.devise", id="no-devise"),
        pytest.param(with_field(VALID, "devise", "euro"), "detail.devise", id="devise-word"),
        pytest.param(with_field(VALID, "devise", "€"), "detail.devise", id="devise-symbol"),
        pytest.param(with_field(VALID, "client", 42), "detail.client", id="client-int"),
        pytest.param(with_field(VALID, "version", "1"), "detail.version", id="version-major"),
        pytest.param(with_field(VALID, "version", 1.0), "detail.version", id="version-float"),
    ],
)
def test_malformed_detail_is_logged_counted_and_raised(
    aws, invoke, emitted_metrics, review_logs, reviews, detail, reason
) -> None:
    with pytest.raises(review.MalformedEvent, match=reason):
        invoke(eventbridge_event(detail))

    assert reviews == []
    assert aws.idempotency_records() == {}
    assert emitted_metrics() == {"MalformedEvents": 1}, "flushed although the handler raised"
    [error] = [log for log in review_logs if log["level"] == "ERROR"]
    assert reason in error["reason"]


def test_event_that_is_not_an_object_is_malformed(aws, invoke, emitted_metrics) -> None:
    with pytest.raises(review.MalformedEvent, match="not an EventBridge event"):
        invoke(["not", "an", "event"])

    assert emitted_metrics() == {"MalformedEvents": 1}


@pytest.mark.parametrize("version", ["2.0", "3.1", "0.9"])
def test_unsupported_major_version_raises_a_clear_error_and_is_counted(
    aws, invoke, emitted_metrics, reviews, version
) -> None:
    # Its fields are not validated against 1.x: a new major may rename them.
    detail = {"factureId": "f-1", "amount": {"value": 6000, "currency": "EUR"}, "version": version}

    with pytest.raises(review.UnsupportedVersion) as raised:
        invoke(eventbridge_event(detail))

    assert str(raised.value) == (
        f"unsupported version {version} of the facture detail: this function supports 1.x "
        "(up to 1.0)"
    )
    assert reviews == []
    assert emitted_metrics() == {"UnsupportedVersions": 1}


def test_dynamodb_throttling_raises_for_the_retries_and_the_retry_succeeds(
    aws, invoke, monkeypatch, emitted_metrics, review_logs, reviews
) -> None:
    client = review._dynamodb_client()
    monkeypatch.setattr(client, "put_item", throttled_put_item(client))
    event = eventbridge_event(facture("f-1"))

    with pytest.raises(IdempotencyPersistenceLayerError) as raised:
        invoke(event)

    assert isinstance(raised.value.__cause__, ClientError)
    assert reviews == []
    assert emitted_metrics() == {"EventsFailed": 1}
    [warning] = [log for log in review_logs if log["level"] == "WARNING"]
    assert warning["message"] == "Transient error: raising so that Lambda retries the event"

    assert invoke(event)["status"] == "PENDING_REVIEW"  # Lambda's asynchronous retry
    assert reviews == ["f-1"]


def test_unexpected_error_in_the_review_raises_and_frees_the_key(
    aws, invoke, monkeypatch, review_logs
) -> None:
    def broken(**kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("bug")

    monkeypatch.setattr(review, "_request_review", broken)

    with pytest.raises(RuntimeError, match="bug"):
        invoke(eventbridge_event(facture("f-1")))

    assert aws.idempotency_records() == {}, "the retry must be able to request the review"
    [error] = [log for log in review_logs if log["level"] == "ERROR"]
    assert error["message"].startswith("Unexpected error")


@pytest.mark.parametrize(
    ("variable", "value"), [("IDEMPOTENCY_TABLE", None), ("REVIEW_THRESHOLD", "x")]
)
def test_invalid_config_raises_naming_the_variable(
    aws, invoke, monkeypatch, emitted_metrics, reviews, variable, value
) -> None:
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError, match=rf"^{variable} ") as raised:
        invoke(eventbridge_event(facture("f-1")))

    assert raised.value.variable == variable
    assert reviews == []
    assert emitted_metrics() == {"EventsFailed": 1}
