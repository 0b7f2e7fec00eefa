"""FanOutTopic: topic security, per-subscriber filters, raw delivery and DLQs, FIFO rules."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from conveyor.constructs.fan_out_topic import FanOutTopic
from conveyor.constructs.filters import FilterError
from tests.template_helpers import deny_insecure_transport, logical_id

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")
CONSUMER = {"code": CODE, "handler": "index.handler"}


@pytest.fixture(scope="module")
def stack(make_app) -> Stack:
    stack = Stack(make_app(), "FanOutTest")
    topic = FanOutTopic(stack, "Orders", service_publishers=["events.amazonaws.com"])
    topic.add_queue_consumer("Payment", filter_policy={"eventType": ["OrderPlaced"]}, **CONSUMER)
    topic.add_queue_consumer(
        "Large",
        filter_policy={"order": {"total": [{"numeric": [">=", 100]}]}},
        filter_policy_scope="MessageBody",
        raw_message_delivery=True,
        **CONSUMER,
    )
    function = lambda_.Function(
        stack, "Invoice", code=CODE, handler="index.handler", runtime=lambda_.Runtime.PYTHON_3_14
    )
    topic.add_function("InvoiceFn", function=function, filter_policy={"eventType": ["invoice"]})
    topic.add_email("Ops", address="ops@example.com")
    topic.add_https("Webhook", url="https://hooks.example.com/orders", raw_message_delivery=True)
    topic.grant_publish(iam.Role(stack, "Publisher", assumed_by=iam.AccountRootPrincipal()))
    fifo = FanOutTopic(stack, "Ledger", fifo=True, topic_name="ledger")
    fifo.add_queue_consumer("Book", **CONSUMER)
    return stack


@pytest.fixture(scope="module")
def template(stack: Stack) -> Template:
    return Template.from_stack(stack)


def subscription(template: Template, stack: Stack, endpoint_path: str) -> dict[str, Any]:
    endpoint = logical_id(stack, endpoint_path)
    found = [
        r["Properties"]
        for r in template.find_resources("AWS::SNS::Subscription").values()
        if endpoint in str(r["Properties"]["Endpoint"])
    ]
    assert len(found) == 1, found
    return found[0]


def test_topic_is_encrypted_with_its_own_key_and_tls_only(template, stack):
    topic = template.to_json()["Resources"][logical_id(stack, "Orders/Topic")]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [logical_id(stack, "Orders/Key"), "Arn"]}
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": logical_id(stack, "Orders/Topic")}],
            "PolicyDocument": deny_insecure_transport("sns:Publish"),
        },
    )


def test_attribute_filter_and_envelope_delivery_for_a_queue_consumer(template, stack):
    props = subscription(template, stack, "Orders/Payment/Queue")
    assert props["Protocol"] == "sqs"
    assert props["FilterPolicy"] == {"eventType": ["OrderPlaced"]}
    assert props["FilterPolicyScope"] == "MessageAttributes"
    assert props.get("RawMessageDelivery", False) is False


def test_payload_filter_with_raw_delivery(template, stack):
    props = subscription(template, stack, "Orders/Large/Queue")
    assert props["FilterPolicy"] == {"order": {"total": [{"numeric": [">=", 100]}]}}
    assert props["FilterPolicyScope"] == "MessageBody"
    assert props["RawMessageDelivery"] is True


def test_every_subscription_has_its_own_dead_letter_queue(template, stack):
    subscriptions = template.find_resources("AWS::SNS::Subscription")
    dlqs = [s["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] for s in subscriptions.values()]
    assert len(dlqs) == len(subscriptions) == 6
    assert len({str(d) for d in dlqs}) == 6


def test_consumer_queues_and_dlqs_use_the_subscriber_key_sns_may_use_for_this_topic(
    template, stack
):
    key_arn = {"Fn::GetAtt": [logical_id(stack, "Orders/SubscriberKey"), "Arn"]}
    for path in ("Orders/Payment/Queue", "Orders/PaymentDeadLetterQueue"):
        props = template.to_json()["Resources"][logical_id(stack, path)]["Properties"]
        assert props["KmsMasterKeyId"] == key_arn
    key = template.to_json()["Resources"][logical_id(stack, "Orders/SubscriberKey")]
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    sns_statement = next(
        s for s in statements if s.get("Sid") == "AllowThisTopicToEncryptDeadLetters"
    )
    assert sns_statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert sns_statement["Condition"]["ArnLike"] == {
        "aws:SourceArn": {"Ref": logical_id(stack, "Orders/Topic")}
    }


def test_lambda_email_and_https_subscribers(template, stack):
    assert subscription(template, stack, "Invoice")["Protocol"] == "lambda"
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "https",
            "Endpoint": "https://hooks.example.com/orders",
            "RawMessageDelivery": True,
        },
    )


def test_service_publisher_may_publish_for_this_account_and_use_the_key(template, stack):
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "sns:Publish",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Condition": {
                                    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                                },
                            }
                        )
                    ]
                )
            }
        },
    )
    key = template.to_json()["Resources"][logical_id(stack, "Orders/Key")]
    principals = [s.get("Principal") for s in key["Properties"]["KeyPolicy"]["Statement"]]
    assert {"Service": "events.amazonaws.com"} in principals


def test_grant_publish_covers_the_topic_and_its_key(template, stack):
    policies = template.find_resources("AWS::IAM::Policy")
    (publisher,) = [
        p
        for p in policies.values()
        if logical_id(stack, "Publisher") in str(p["Properties"]["Roles"])
    ]
    actions = {
        a
        for s in publisher["Properties"]["PolicyDocument"]["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"sns:Publish", "kms:GenerateDataKey*", "kms:Decrypt"} <= actions


def test_fifo_topic_has_fifo_consumer_queue_and_fifo_subscription_dlq(template, stack):
    resources = template.to_json()["Resources"]
    assert resources[logical_id(stack, "Ledger/Topic")]["Properties"]["TopicName"] == "ledger.fifo"
    assert resources[logical_id(stack, "Ledger/Book/Queue")]["Properties"]["FifoQueue"] is True
    assert resources[logical_id(stack, "Ledger/BookDeadLetterQueue")]["Properties"]["FifoQueue"]


@pytest.fixture
def topics(make_app):
    stack = Stack(make_app(), "Invalid")
    return stack, FanOutTopic(stack, "Standard"), FanOutTopic(stack, "Fifo", fifo=True)


def test_fifo_topic_rejects_standard_queues_and_non_queue_subscribers(topics):
    stack, _, fifo = topics
    with pytest.raises(ValueError, match="only deliver to FIFO SQS queues"):
        fifo.add_queue("Q", queue=sqs.Queue(stack, "Standard Q"))
    with pytest.raises(ValueError, match="cannot deliver to e-mail"):
        fifo.add_email("E", address="a@example.com")
    with pytest.raises(ValueError, match="cannot deliver to HTTPS"):
        fifo.add_https("H", url="https://example.com")


@pytest.mark.parametrize(
    ("policy", "scope", "message"),
    [
        ({"eventType": [{"prefx": "Order"}]}, "MessageAttributes", "unknown operator 'prefx'"),
        ({f"k{i}": ["v"] for i in range(6)}, "MessageAttributes", "5"),
        ({"a": list(range(151))}, "MessageAttributes", "150"),
        ({"order": {"total": [1]}}, "MessageAttributes", "nest"),
        ({"eventType": ["x"]}, "Payload", "filter_policy_scope"),
    ],
)
def test_invalid_filter_policies_are_rejected_at_synth(topics, policy, scope, message):
    stack, standard, _ = topics
    with pytest.raises(ValueError, match=message):
        standard.add_queue(
            "Q",
            queue=sqs.Queue(stack, f"Q{abs(hash(str(policy)))}"),
            filter_policy=policy,
            filter_policy_scope=scope,
        )


def test_filter_errors_name_the_subscriber(topics):
    stack, standard, _ = topics
    with pytest.raises(FilterError, match="Invalid/Standard/Q"):
        standard.add_queue("Q", queue=sqs.Queue(stack, "Q1"), filter_policy={"x": [{"numric": 1}]})


def test_http_endpoint_bad_email_and_duplicate_ids_are_rejected(topics):
    stack, standard, _ = topics
    with pytest.raises(ValueError, match="https://"):
        standard.add_https("H", url="http://example.com")
    with pytest.raises(ValueError, match="not an e-mail address"):
        standard.add_email("E", address="nobody")
    standard.add_queue("Same", queue=sqs.Queue(stack, "Q2"))
    with pytest.raises(ValueError, match="duplicate subscriber id"):
        standard.add_queue("Same", queue=sqs.Queue(stack, "Q3"))


def test_consumer_type_follows_the_topic(topics):
    _, standard, _ = topics
    with pytest.raises(ValueError, match="do not pass fifo"):
        standard.add_queue_consumer("C", fifo=True, **CONSUMER)
