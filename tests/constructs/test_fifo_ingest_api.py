"""FifoIngestApi: the integration mapping rendered for sample requests, the API's security and
error mapping, and its synth-time checks."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template
from botocore.validate import validate_parameters

from conveyor.constructs.fifo_ingest_api import FifoIngestApi
from conveyor.sandbox.vtl import render, resolve_join
from conveyor.stacks.order_pipeline import ORDER_EVENT_SCHEMA, ORDER_FIELDS
from tests.template_helpers import logical_id

QUEUE_URL = "https://sqs.eu-west-3.amazonaws.com/111111111111/orders.fifo"
ORDER_ID = dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING)


@pytest.fixture(scope="module")
def stack(make_app) -> Stack:
    stack = Stack(make_app(), "IngestTest")
    queue = sqs.Queue(stack, "Queue", fifo=True)
    table = dynamodb.TableV2(
        stack,
        "Table",
        partition_key=dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING),
    )
    api = FifoIngestApi(
        stack,
        "Ingest",
        queue=queue,
        request_schema=ORDER_EVENT_SCHEMA,
        deduplication_fields=("orderId", "event"),
    )
    api.add_lookup(table=table, key_name="orderId", fields=ORDER_FIELDS)
    keyed = FifoIngestApi(
        Stack(stack.node.scope, "KeyedTest"),  # type: ignore[arg-type]
        "Ingest",
        queue=sqs.Queue(stack.node.scope.node.find_child("KeyedTest"), "Q", fifo=True),  # type: ignore[union-attr]
        request_schema=ORDER_EVENT_SCHEMA,
        authorization="api_key",
        quota_per_day=10_000,
        waf=True,
    )
    assert keyed.api_key is not None
    return stack


@pytest.fixture(scope="module")
def template(stack) -> dict[str, Any]:
    return Template.from_stack(stack).to_json()


@pytest.fixture(scope="module")
def keyed(stack) -> Template:
    return Template.from_stack(stack.node.scope.node.find_child("KeyedTest"))


def of_type(template: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == resource_type]


def method(template: dict[str, Any], http_method: str) -> dict[str, Any]:
    (found,) = [
        m for m in of_type(template, "AWS::ApiGateway::Method") if m["HttpMethod"] == http_method
    ]
    return found


@pytest.fixture(scope="module")
def send_template(template, stack) -> str:
    integration = method(template, "POST")["Integration"]
    raw = integration["RequestTemplates"]["application/json"]
    return resolve_join(raw, {logical_id(stack, "Queue"): QUEUE_URL})


def render_send(send_template: str, body: dict[str, Any] | str, headers=None) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    output, _ = render(send_template, text, headers)
    parameters: dict[str, Any] = json.loads(output)
    return parameters


ORDER = {
    "orderId": "o-42",
    "customerId": "c-7",
    "event": "created",
    "items": [{"sku": "A-1", "quantity": 2, "unitPrice": 9.5}],
    "total": 19.0,
    "currency": "EUR",
}


def test_mapping_sends_the_body_grouped_by_customer_deduplicated_by_order_and_event(
    send_template,
):
    parameters = render_send(send_template, ORDER)
    assert parameters["QueueUrl"] == QUEUE_URL
    assert json.loads(parameters["MessageBody"]) == ORDER
    assert parameters["MessageGroupId"] == "c-7"
    assert parameters["MessageDeduplicationId"] == "o-42-created"


def test_mapping_output_is_a_valid_sqs_send_message_request(send_template):
    parameters = render_send(send_template, ORDER)
    model = boto3.client("sqs", region_name="eu-west-3").meta.service_model
    validate_parameters(parameters, model.operation_model("SendMessage").input_shape)


def test_idempotency_key_header_overrides_the_deduplication_id(send_template):
    parameters = render_send(send_template, ORDER, {"Idempotency-Key": "retry-123"})
    assert parameters["MessageDeduplicationId"] == "retry-123"


def test_quotes_apostrophes_backslashes_and_unicode_survive_the_mapping(send_template):
    tricky = {**ORDER, "note": 'l\'été "chaud" \\ back\nline ✓'}
    body = json.dumps(tricky, ensure_ascii=False)
    parameters = render_send(send_template, body)
    assert json.loads(parameters["MessageBody"]) == tricky


def test_integration_calls_sqs_send_message_with_the_json_protocol_as_its_role(template, stack):
    integration = method(template, "POST")["Integration"]
    assert integration["Type"] == "AWS"
    assert integration["IntegrationHttpMethod"] == "POST"
    assert integration["PassthroughBehavior"] == "NEVER"
    assert integration["RequestParameters"] == {
        "integration.request.header.Content-Type": "'application/x-amz-json-1.0'",
        "integration.request.header.X-Amz-Target": "'AmazonSQS.SendMessage'",
    }
    assert integration["Credentials"] == {
        "Fn::GetAtt": [logical_id(stack, "Ingest/IntegrationRole"), "Arn"]
    }
    assert ":sqs:path//" in json.dumps(integration["Uri"])


def responses(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    integration = method(template, "POST")["Integration"]
    return {r["StatusCode"]: r for r in integration["IntegrationResponses"]}


def test_success_answers_202_with_the_message_id(template):
    accepted = responses(template)["202"]
    assert "SelectionPattern" not in accepted
    sqs_answer = json.dumps(
        {"MessageId": "m-1", "SequenceNumber": "18849", "MD5OfMessageBody": "x"}
    )
    output, _ = render(accepted["ResponseTemplates"]["application/json"], sqs_answer)
    assert json.loads(output) == {
        "messageId": "m-1",
        "sequenceNumber": "18849",
        "status": "accepted",
    }


def test_errors_map_to_400_500_and_503_with_retry_after(template):
    mapped = responses(template)
    assert mapped["400"]["SelectionPattern"] == "400"
    assert mapped["500"]["SelectionPattern"] == "403|404"
    assert mapped["503"]["SelectionPattern"] == "5\\d{2}|429"
    assert mapped["503"]["ResponseParameters"] == {"method.response.header.Retry-After": "'5'"}
    rejected, _ = render(
        mapped["400"]["ResponseTemplates"]["application/json"],
        json.dumps({"__type": "InvalidParameterValue", "message": "Value 'x' for parameter"}),
    )
    assert json.loads(rejected)["reason"] == "Value 'x' for parameter"
    misconfigured, _ = render(mapped["500"]["ResponseTemplates"]["application/json"], "{}")
    assert "AccessDenied" not in misconfigured


def test_body_is_validated_against_the_model_and_errors_are_explained(template):
    post = method(template, "POST")
    assert set(post["RequestModels"]) == {"application/json"}
    (validator,) = of_type(template, "AWS::ApiGateway::RequestValidator")
    assert validator["ValidateRequestBody"] is True
    (model,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Model"
    ]
    assert set(model["Schema"]["required"]) == {"orderId", "customerId", "event"}
    assert model["Schema"]["properties"]["event"]["enum"] == ["created", "paid", "shipped"]
    bad_body = [
        r
        for r in of_type(template, "AWS::ApiGateway::GatewayResponse")
        if r["ResponseType"] == "BAD_REQUEST_BODY"
    ]
    assert "validationErrorString" in bad_body[0]["ResponseTemplates"]["application/json"]


def test_iam_authorization_by_default(template):
    assert method(template, "POST")["AuthorizationType"] == "AWS_IAM"
    assert method(template, "GET")["AuthorizationType"] == "AWS_IAM"


def test_stage_throttles_and_writes_json_access_logs_and_error_execution_logs(template):
    (stage,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Stage"
    ]
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == 50
    assert settings["ThrottlingBurstLimit"] == 100
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["DataTraceEnabled"] is False
    assert "$context.requestId" in stage["AccessLogSetting"]["Format"]


def test_role_may_only_send_to_the_queue_and_read_the_table(template, stack):
    policy = template["Resources"][logical_id(stack, "Ingest/IntegrationRole/DefaultPolicy")]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = sorted(
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    )
    assert "sqs:SendMessage" in actions
    assert "dynamodb:GetItem" in actions
    assert not [a for a in actions if a.startswith("sqs:Receive") or a.startswith("dynamodb:Put")]


def get_template(template: dict[str, Any], stack) -> tuple[str, str]:
    integration = method(template, "GET")["Integration"]
    request = resolve_join(
        integration["RequestTemplates"]["application/json"], {logical_id(stack, "Table"): "orders"}
    )
    (ok,) = [r for r in integration["IntegrationResponses"] if r["StatusCode"] == "200"]
    return request, ok["ResponseTemplates"]["application/json"]


def test_lookup_reads_the_item_by_path_parameter_with_a_consistent_read(template, stack):
    request, _ = get_template(template, stack)
    output, _ = render(request, "", {"id": 'o-"42'})
    assert json.loads(output) == {
        "TableName": "orders",
        "Key": {"orderId": {"S": 'o-"42'}},
        "ConsistentRead": True,
    }


def test_lookup_renders_the_item_with_nulls_for_missing_attributes(template, stack):
    _, response = get_template(template, stack)
    item = {"Item": {"orderId": {"S": "o-1"}, "status": {"S": "paid"}, "total": {"N": "19.5"}}}
    output, context = render(response, json.dumps(item))
    rendered = json.loads(output)
    assert rendered["orderId"] == "o-1"
    assert rendered["status"] == "paid"
    assert rendered["total"] == 19.5
    assert rendered["carrier"] is None
    assert context["responseOverride"]["status"] is None


def test_lookup_of_an_unknown_id_answers_404(template, stack):
    _, response = get_template(template, stack)
    output, context = render(response, "{}")
    assert context["responseOverride"]["status"] == 404
    assert json.loads(output) == {"message": "Not found"}


def test_api_key_mode_requires_a_key_in_a_throttled_usage_plan_with_quota(keyed):
    keyed.has_resource_properties(
        "AWS::ApiGateway::Method", {"ApiKeyRequired": True, "AuthorizationType": "NONE"}
    )
    keyed.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": 50, "BurstLimit": 100},
            "Quota": {"Limit": 10_000, "Period": "DAY"},
        },
    )
    keyed.resource_count_is("AWS::ApiGateway::ApiKey", 1)


def test_waf_attaches_managed_rules_and_a_rate_limit(keyed):
    keyed.has_resource_properties(
        "AWS::WAFv2::WebACL",
        {
            "Scope": "REGIONAL",
            "Rules": Match.array_with(
                [
                    Match.object_like({"Name": "AWSManagedRulesCommonRuleSet"}),
                    Match.object_like({"Name": "RatePerIp"}),
                ]
            ),
        },
    )
    keyed.resource_count_is("AWS::WAFv2::WebACLAssociation", 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue_fifo": False}, "must be a FIFO queue"),
        ({"group_id_field": "region"}, "must require 'region'"),
        ({"deduplication_fields": ("orderId", "note")}, "must require 'note'"),
        ({"deduplication_fields": ()}, "at least one field"),
        ({"authorization": "cognito"}, "authorization must be one of"),
        ({"resource_name": "Orders"}, "resource_name"),
        ({"throttling_rate_limit": 200, "throttling_burst_limit": 100}, "throttling_burst_limit"),
    ],
)
def test_invalid_settings_are_rejected_at_synth(make_app, options, message):
    stack = Stack(make_app(), "Invalid")
    queue = sqs.Queue(stack, "Q", fifo=options.pop("queue_fifo", True) or None)
    with pytest.raises(ValueError, match=message):
        FifoIngestApi(stack, "Api", queue=queue, request_schema=ORDER_EVENT_SCHEMA, **options)


def test_lookup_fields_are_checked(make_app):
    stack = Stack(make_app(), "Lookup")
    api = FifoIngestApi(
        stack, "Api", queue=sqs.Queue(stack, "Q", fifo=True), request_schema=ORDER_EVENT_SCHEMA
    )
    table = dynamodb.TableV2(
        stack,
        "T",
        partition_key=dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING),
    )
    with pytest.raises(ValueError, match="type must be 'S' or 'N'"):
        api.add_lookup(table=table, key_name="orderId", fields={"items": "L"})
