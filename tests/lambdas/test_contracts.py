"""Contracts between the CDK code and the handlers: every synthesized function's environment is
accepted by its handler's settings parser.

The synthesized app is deployed in-process into moto by the sandbox deployer, whose function
specs carry resolved environments (queue URLs, table names, parameter names...). Each asset's
``contract.SETTINGS`` maps a handler string to the class whose ``from_env`` the handler calls.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from handler_kit import contract as kit_contract
from handler_kit.settings import ConfigError

from conveyor.sandbox.deployer import deploy
from tests.conftest import require_broker
from tests.support.aws import fake_aws_env, mocked_aws

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
ASSETS = (
    "image_resize",
    "order_events",
    "order_pipeline",
    "payments",
    "remediation",
    "telemetry",
    "accounts",
    "choreography",
    "tours",
)
for _asset in ASSETS:
    if str(LAMBDAS / _asset) not in sys.path:
        sys.path.append(str(LAMBDAS / _asset))

# Variables Lambda or the sandbox sets, not the stacks.
_RUNTIME_VARIABLES = ("AWS_NODEJS_CONNECTION_REUSE_ENABLED",)


def contract_of(handler: str) -> Any:
    return importlib.import_module(f"{handler.partition('.')[0]}.contract")


def settings_class(handler: str) -> Any:
    module, _, name = contract_of(handler).SETTINGS[handler].partition(":")
    return getattr(importlib.import_module(module), name)


def environment_problems(
    handler: str, environ: Mapping[str, str], parameter: Callable[[str], str]
) -> list[str]:
    """Why ``handler`` would reject ``environ`` (its parser raised, or a variable that no
    contract knows was set); [] when it accepts it."""
    contract = contract_of(handler)
    known = {*contract.ENVIRONMENT, *kit_contract.ENVIRONMENT, *_RUNTIME_VARIABLES}
    problems = [f"{name} is not a variable of {handler}" for name in environ if name not in known]
    resolved = dict(environ)
    for name, stands_for in getattr(contract, "PARAMETER_VARIABLES", {}).items():
        if stands_for not in resolved and resolved.get(name):
            resolved[stands_for] = parameter(resolved[name])
    try:
        settings_class(handler).from_env(resolved)
    except ConfigError as exc:
        problems.append(f"{handler}: {exc}")
    return problems


@pytest.fixture(scope="module")
def deployed(synthesized, local_brokers) -> Any:
    """Every synthesized function's spec (resolved environment), and an SSM reader."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_aws_env(monkeypatch)
        session = boto3.session.Session()
        with mocked_aws(session):
            require_broker(local_brokers, "rabbitmq", "kafka")
            deployment = deploy(synthesized["outdir"], session=session, brokers=local_brokers)
            ssm = session.client("ssm")
            parameters = {
                p["Name"]: ssm.get_parameter(Name=p["Name"])["Parameter"]["Value"]
                for page in ssm.get_paginator("describe_parameters").paginate()
                for p in page["Parameters"]
            }
    functions = {
        f"{stack.name}/{spec.logical_id}": spec
        for stack in deployment.stacks.values()
        for spec in stack.functions.values()
        if spec.handler.partition(".")[0] in ASSETS
    }
    return functions, parameters.__getitem__


def test_every_conveyor_handler_string_has_a_settings_parser(deployed) -> None:
    functions, _ = deployed
    handlers = {spec.handler for spec in functions.values()}
    assert handlers == {
        "image_resize.handler.handler",
        "order_events.handler.handler",
        "order_events.routing.invoice_handler",
        "order_events.routing.user_handler",
        "order_pipeline.handler.handler",
        "payments.review.handler",
        "remediation.handler.handler",
        "telemetry.handler.handler",
        "accounts.commands.handler",
        "accounts.queries.handler",
        "accounts.projection.handler",
        "accounts.projection.rebuild_handler",
        "accounts.outbox.handler",
        "accounts.subscribers.notification_handler",
        "accounts.subscribers.audit_handler",
        "choreography.orders.handler",
        "choreography.stock.handler",
        "choreography.billing.handler",
        "choreography.notification.handler",
        "tours.rabbit_producer.handler",
        "tours.rabbit_consumer.handler",
        "tours.kafka_producer.handler",
        "tours.kafka_consumer.handler",
        "tours.definitions.handler",
    }
    for handler in handlers:
        assert callable(settings_class(handler).from_env), handler


def test_every_synthesized_environment_is_accepted_by_its_handler(deployed) -> None:
    functions, parameter = deployed
    assert len(functions) >= 10, "four consumers, two routed functions, three stacks' others"
    problems = {
        name: environment_problems(spec.handler, spec.environment, parameter)
        for name, spec in functions.items()
    }
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_dead_letter_queue_urls_are_real_urls(deployed) -> None:
    functions, _ = deployed
    urls = [
        spec.environment[kit_contract.DEAD_LETTER_QUEUE_URL]
        for spec in functions.values()
        if kit_contract.DEAD_LETTER_QUEUE_URL in spec.environment
    ]
    assert len(urls) == 6, "four order consumers, the image resizer and the order pipeline"
    assert all(url.startswith(("http://", "https://")) for url in urls)


def _spec(deployed: Any, handler: str) -> Any:
    functions, _ = deployed
    return next(spec for spec in functions.values() if spec.handler == handler)


def test_the_check_rejects_a_missing_required_variable(deployed) -> None:
    _, parameter = deployed
    environ = dict(_spec(deployed, "order_pipeline.handler.handler").environment)
    del environ["ORDERS_TABLE"]
    assert environment_problems("order_pipeline.handler.handler", environ, parameter) == [
        "order_pipeline.handler.handler: ORDERS_TABLE is required but is not set"
    ]


def test_the_check_rejects_an_unknown_consumer_name(deployed) -> None:
    _, parameter = deployed
    environ = {**_spec(deployed, "order_events.handler.handler").environment}
    environ["CONSUMER_NAME"] = "billing"
    [problem] = environment_problems("order_events.handler.handler", environ, parameter)
    assert "CONSUMER_NAME must be one of payment, inventory, shipping, notification" in problem


def test_the_check_rejects_a_misspelt_optional_variable(deployed) -> None:
    _, parameter = deployed
    environ = {**_spec(deployed, "image_resize.handler.handler").environment}
    environ["OUTPUT_PREFIXE"] = environ.pop("OUTPUT_PREFIX")
    assert environment_problems("image_resize.handler.handler", environ, parameter) == [
        "OUTPUT_PREFIXE is not a variable of image_resize.handler.handler"
    ]


def test_the_check_reads_the_remediation_rules_from_their_parameter(deployed) -> None:
    _, parameter = deployed
    spec = _spec(deployed, "remediation.handler.handler")
    assert "REMEDIATION_RULES" not in spec.environment
    broken = {**spec.environment, "REMEDIATION_RULES_PARAMETER": "missing"}

    def reader(name: str) -> str:
        return parameter(name) if name != "missing" else '{"alarm": {"action": "reboot"}}'

    [problem] = environment_problems("remediation.handler.handler", broken, reader)
    assert "REMEDIATION_RULES ['alarm'].action must be one of record_incident, redrive" in problem
