"""The REST APIs of an assembly, served by the sandbox (conveyor.sandbox.apis): the order
API's validation, mapping templates, SQS and DynamoDB integrations, gateway responses and API
keys, through the real synthesized templates deployed into moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from conveyor.sandbox.apis import RestApis, api_key_value
from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import REGION
from conveyor.sandbox.runtime import Runtime
from tests.support.aws import fake_aws_env

ORDER = {
    "orderId": "o-1",
    "customerId": "c-1",
    "event": "created",
    "items": [{"sku": "A", "quantity": 2, "unitPrice": 4.5}],
    "total": 9.0,
    "currency": "EUR",
}


class Api:
    def __init__(self, outdir: Path, stack: str) -> None:
        self.session = boto3.session.Session(region_name=REGION)
        self.deployment = deploy(outdir, session=self.session, stack_names=[stack])
        self.stack = self.deployment.stacks[stack]
        self.runtime = Runtime(self.deployment, session=self.session)
        self.apis = RestApis(self.deployment, session=self.session, runtime=self.runtime)
        url = self.apis.local_url(self.stack.outputs["ApiUrl"], "")
        assert url is not None
        self.orders = url  # /restapis/<id>/v1/_user_request_/orders

    def post(self, body: Any, **headers: str) -> Any:
        text = body if isinstance(body, str) else json.dumps(body)
        return self.apis.handle(
            "POST",
            self.orders,
            headers={"Content-Type": "application/json", **headers},
            body=text.encode(),
        )


@pytest.fixture
def api(synthesized, monkeypatch) -> Iterator[Api]:
    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        served = Api(Path(synthesized["outdir"]), "Conveyor-test-OrderPipeline")
        yield served
        served.runtime.close()


def test_a_valid_order_is_accepted_with_202_and_sent_to_the_fifo_queue(api):
    response = api.post(ORDER)
    assert response.status == 202
    assert response.json()["status"] == "accepted"
    sqs = api.session.client("sqs", region_name=REGION)
    (message,) = sqs.receive_message(
        QueueUrl=api.stack.outputs["QueueUrl"], AttributeNames=["All"]
    )["Messages"]
    assert json.loads(message["Body"]) == ORDER
    assert message["Attributes"]["MessageGroupId"] == "c-1"
    assert message["MessageId"] == response.json()["messageId"]


def test_an_invalid_order_gets_400_with_every_validation_error(api):
    response = api.post({"orderId": "o 1", "event": "lost"})
    assert response.status == 400
    body = response.json()
    assert body["message"] == "Invalid request body"
    assert "'customerId' is a required property" in body["errors"]
    assert "'lost' is not one of" in body["errors"]
    assert "(at /orderId)" in body["errors"]
    sqs = api.session.client("sqs", region_name=REGION)
    assert "Messages" not in sqs.receive_message(QueueUrl=api.stack.outputs["QueueUrl"])


def test_a_body_that_is_not_json_is_a_bad_request_body(api):
    response = api.post("{not json")
    assert response.status == 400
    assert response.json()["errors"].startswith("[Invalid JSON")


def test_an_unknown_path_is_the_apis_4xx_gateway_response(api):
    response = api.apis.handle("GET", api.orders.replace("/orders", "/nothing"))
    assert response.status == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_an_unknown_stage_or_api_is_not_served(api):
    assert api.apis.handle("POST", api.orders.replace("/v1/", "/v9/")).status == 403
    assert api.apis.handle("POST", "/restapis/nope/v1/_user_request_/orders").status == 404


def test_the_lookup_reads_the_order_from_dynamodb_or_answers_404(api):
    assert api.post(ORDER).status == 202
    api.runtime.pump()
    found = api.apis.handle("GET", f"{api.orders}/o-1")
    assert found.status == 200
    assert found.json()["status"] == "created"
    assert found.json()["total"] == 9.0
    missing = api.apis.handle("GET", f"{api.orders}/o-2")
    assert missing.status == 404
    assert missing.json() == {"message": "Not found"}


def test_the_idempotency_header_deduplicates_a_retry(api):
    assert api.post(ORDER, **{"Idempotency-Key": "k-1"}).status == 202
    retried = {**ORDER, "event": "paid", "amount": 9.0}  # another dedup id without the key
    assert api.post(retried, **{"Idempotency-Key": "k-1"}).status == 202
    sqs = api.session.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=api.stack.outputs["QueueUrl"], MaxNumberOfMessages=10)
    assert len(messages["Messages"]) == 1


@pytest.fixture(scope="module")
def api_key_assembly(make_app, tmp_path_factory) -> Path:
    from conveyor.stacks.order_pipeline import OrderPipelineStack

    outdir = tmp_path_factory.mktemp("api-key.out")
    app = make_app(outdir=str(outdir))
    OrderPipelineStack(app, "Keyed-OrderPipeline", api_authorization="api_key")
    app.synth()
    return outdir


def test_an_api_key_method_needs_a_key_of_its_usage_plan(api_key_assembly, monkeypatch):
    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        keyed = Api(api_key_assembly, "Keyed-OrderPipeline")
        (key,) = [r for r in keyed.stack.resources.values() if r.type == "AWS::ApiGateway::ApiKey"]
        value = api_key_value("Keyed-OrderPipeline", key.logical_id)
        assert keyed.post(ORDER).status == 403
        assert keyed.post(ORDER).json() == {"message": "Forbidden"}
        assert keyed.post(ORDER, **{"x-api-key": "wrong"}).status == 403
        assert keyed.post(ORDER, **{"x-api-key": value}).status == 202
        keyed.runtime.close()


PROXY_HANDLER = """
import json


def handler(event, context):
    if event["path"] == "/boom":
        raise RuntimeError("boom")
    return {
        "statusCode": 201,
        "headers": {"X-Seen-Path": event["path"]},
        "body": json.dumps({"method": event["httpMethod"], "body": event["body"],
                            "proxy": event["pathParameters"]}),
    }
"""


@pytest.fixture(scope="module")
def proxy_assembly(make_app, tmp_path_factory) -> Path:
    from aws_cdk import Stack
    from aws_cdk import aws_apigateway as apigateway
    from aws_cdk import aws_lambda as lambda_

    code = tmp_path_factory.mktemp("proxy-code")
    (code / "proxy.py").write_text(PROXY_HANDLER)
    outdir = tmp_path_factory.mktemp("proxy.out")
    app = make_app(outdir=str(outdir))
    stack = Stack(app, "Proxy")
    function = lambda_.Function(
        stack,
        "Echo",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="proxy.handler",
        code=lambda_.Code.from_asset(str(code)),
    )
    apigateway.LambdaRestApi(stack, "Api", handler=function)
    app.synth()
    return outdir


def test_a_lambda_proxy_integration_gets_the_proxy_event_and_answers_with_it(
    proxy_assembly, monkeypatch
):
    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        deployment = deploy(proxy_assembly, session=session)
        with Runtime(deployment, session=session) as runtime:
            apis = RestApis(deployment, session=session, runtime=runtime)
            (api,) = apis.apis.values()
            base = f"/restapis/{api.id}/prod/_user_request_"
            response = apis.handle("PUT", f"{base}/a/b", body=b"hello")
            assert response.status == 201
            assert response.headers["X-Seen-Path"] == "/a/b"
            assert response.json() == {"method": "PUT", "body": "hello", "proxy": {"proxy": "a/b"}}
            failed = apis.handle("GET", f"{base}/boom")
            assert failed.status == 502
            assert failed.json() == {"message": "Internal server error"}


CUSTOM_HANDLER = """
def handler(event, context):
    if event.get("name") == "boom":
        raise ValueError("bad name: boom")
    return {"greeting": "hello " + event["name"]}
"""


@pytest.fixture(scope="module")
def custom_assembly(make_app, tmp_path_factory) -> Path:
    """A Lambda (non-proxy) integration with mapping templates, and a MOCK method."""
    from aws_cdk import Stack
    from aws_cdk import aws_apigateway as apigateway
    from aws_cdk import aws_lambda as lambda_

    code = tmp_path_factory.mktemp("custom-code")
    (code / "custom.py").write_text(CUSTOM_HANDLER)
    outdir = tmp_path_factory.mktemp("custom.out")
    app = make_app(outdir=str(outdir))
    stack = Stack(app, "Custom")
    function = lambda_.Function(
        stack,
        "Greeter",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="custom.handler",
        code=lambda_.Code.from_asset(str(code)),
    )
    api = apigateway.RestApi(stack, "Api")
    greet = api.root.add_resource("greet").add_resource("{name}")
    greet.add_method(
        "GET",
        apigateway.LambdaIntegration(
            function,
            proxy=False,
            request_templates={"application/json": '{"name": "$input.params(\'name\')"}'},
            integration_responses=[
                apigateway.IntegrationResponse(
                    status_code="200",
                    response_templates={
                        "application/json": '{"said": "$input.path(\'$.greeting\')"}'
                    },
                ),
                apigateway.IntegrationResponse(
                    status_code="422",
                    selection_pattern="bad name.*",
                    response_templates={"application/json": '{"refused": true}'},
                ),
            ],
        ),
        method_responses=[
            apigateway.MethodResponse(status_code="200"),
            apigateway.MethodResponse(status_code="422"),
        ],
    )
    api.root.add_resource("health").add_method(
        "GET",
        apigateway.MockIntegration(
            request_templates={"application/json": '{"statusCode": 200}'},
            integration_responses=[
                apigateway.IntegrationResponse(
                    status_code="200", response_templates={"application/json": '{"ok": true}'}
                )
            ],
        ),
        method_responses=[apigateway.MethodResponse(status_code="200")],
    )
    app.synth()
    return outdir


def test_a_lambda_custom_integration_and_a_mock_use_their_mapping_templates(
    custom_assembly, monkeypatch
):
    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        deployment = deploy(custom_assembly, session=session)
        with Runtime(deployment, session=session) as runtime:
            apis = RestApis(deployment, session=session, runtime=runtime)
            (api,) = apis.apis.values()
            base = f"/restapis/{api.id}/prod/_user_request_"
            said = apis.handle("GET", f"{base}/greet/ada")
            assert (said.status, said.json()) == (200, {"said": "hello ada"})
            refused = apis.handle("GET", f"{base}/greet/boom")  # errorMessage matches
            assert (refused.status, refused.json()) == (422, {"refused": True})
            health = apis.handle("GET", f"{base}/health")
            assert (health.status, health.json()) == (200, {"ok": True})
