"""The sandbox filters as AWS does: Conveyor's pattern model decides every EventBridge
delivery, TestEventPattern and every SNS filter-policy decision, and validates patterns and
policies when rules and subscriptions are created (moto's own checks replaced)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError

from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.moto_patches import use_conveyor_filters
from conveyor.sandbox.providers.base import UnsupportedResource
from tests.support.aws import REGION, fake_aws_env


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_env(monkeypatch)
    undo = use_conveyor_filters()
    try:
        with moto.mock_aws():
            yield
    finally:
        undo()


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def queue(name: str) -> tuple[str, str]:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def bodies(url: str) -> list[Any]:
    response = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in response.get("Messages", [])]


def rule_to_queue(name: str, pattern: dict[str, Any]) -> str:
    url, arn = queue(name)
    events = client("events")
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    return url


def put_event(detail: dict[str, Any], **entry: Any) -> None:
    response = client("events").put_events(
        Entries=[{"Source": "shop", "DetailType": "Order", "Detail": json.dumps(detail), **entry}]
    )
    assert response["FailedEntryCount"] == 0


# --- EventBridge ---------------------------------------------------------------------------


def test_put_rule_rejects_an_invalid_pattern_as_eventbridge_does(aws: None) -> None:
    with pytest.raises(ClientError) as error:
        client("events").put_rule(
            Name="bad", EventPattern=json.dumps({"detail": {"n": [{"NUMERIC": ["=", 5]}]}})
        )
    assert error.value.response["Error"]["Code"] == "InvalidEventPatternException"
    assert "did you mean 'numeric'?" in error.value.response["Error"]["Message"]


def test_put_rule_accepts_a_top_level_field_outside_the_envelope(aws: None) -> None:
    client("events").put_rule(Name="files", EventPattern=json.dumps({"FileName": [".png"]}))
    assert client("events").describe_rule(Name="files")["Name"] == "files"


def test_test_event_pattern_answers_with_conveyors_matcher(aws: None) -> None:
    events = client("events")
    event = {
        "id": "1",
        "account": "123456789012",
        "source": "shop",
        "time": "2026-12-02T06:00:00Z",
        "region": REGION,
        "detail-type": "Order",
        "resources": [],
        "detail": {"lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 9}]},
    }
    same_line = {"detail": {"lines": {"sku": ["B-2"], "qty": [{"numeric": [">", 5]}]}}}
    across_lines = {"detail": {"lines": {"sku": ["A-1"], "qty": [{"numeric": [">", 5]}]}}}
    assert events.test_event_pattern(EventPattern=json.dumps(same_line), Event=json.dumps(event))[
        "Result"
    ]
    assert not events.test_event_pattern(
        EventPattern=json.dumps(across_lines), Event=json.dumps(event)
    )["Result"]


def test_test_event_pattern_rejects_an_invalid_pattern_and_an_incomplete_event(aws: None) -> None:
    events = client("events")
    with pytest.raises(ClientError, match="InvalidEventPatternException"):
        events.test_event_pattern(
            EventPattern=json.dumps({"source": [{"prefx": "a"}]}), Event=json.dumps({})
        )
    with pytest.raises(ClientError, match="lacks id, account"):
        events.test_event_pattern(
            EventPattern=json.dumps({"source": ["a"]}), Event=json.dumps({"source": "a"})
        )


def test_a_prefix_on_time_matches_the_delivered_iso_time(aws: None) -> None:
    url = rule_to_queue("today", {"source": ["shop"], "time": [{"prefix": "2026-12-02T06"}]})
    put_event({"n": 1}, Time=datetime(2026, 12, 2, 6, 30, tzinfo=UTC))
    put_event({"n": 2}, Time=datetime(2026, 12, 3, 6, 30, tzinfo=UTC))
    delivered = bodies(url)
    assert [event["detail"]["n"] for event in delivered] == [1]
    assert delivered[0]["time"].startswith("2026-12-02T06")


def test_a_pattern_into_an_array_of_objects_is_delivered(aws: None) -> None:
    url = rule_to_queue(
        "alarms",
        {"detail": {"metrics": {"metricStat": {"namespace": ["AWS/EC2"]}, "id": ["m1"]}}},
    )
    put_event({"metrics": [{"id": "m1", "metricStat": {"namespace": "AWS/EC2"}}]})
    put_event({"metrics": [{"id": "m1"}, {"id": "m2", "metricStat": {"namespace": "AWS/EC2"}}]})
    assert len(bodies(url)) == 1  # the second has the fields in two different elements


def test_exists_true_does_not_match_empty_resources(aws: None) -> None:
    url = rule_to_queue("with-resources", {"source": ["shop"], "resources": [{"exists": True}]})
    put_event({"n": 1})
    put_event({"n": 2}, Resources=["arn:aws:s3:::bucket"])
    assert [event["detail"]["n"] for event in bodies(url)] == [2]


# --- SNS -------------------------------------------------------------------------------------


def subscribe(name: str, policy: dict[str, Any], scope: str) -> tuple[str, str]:
    sns = client("sns")
    topic = sns.create_topic(Name=name)["TopicArn"]
    url, arn = queue(name)
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={
            "RawMessageDelivery": "true",
            "FilterPolicyScope": scope,
            "FilterPolicy": json.dumps(policy),
        },
    )
    return topic, url


def raw_bodies(url: str) -> list[str]:
    response = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return sorted(message["Body"] for message in response.get("Messages", []))


def test_sns_accepts_a_cidr_policy_and_filters_on_it(aws: None) -> None:
    topic, url = subscribe("cidr", {"source_ip": [{"cidr": "10.0.0.0/24"}]}, "MessageAttributes")
    for label, address in (("inside", "10.0.0.7"), ("outside", "10.0.1.7")):
        client("sns").publish(
            TopicArn=topic,
            Message=label,
            MessageAttributes={"source_ip": {"DataType": "String", "StringValue": address}},
        )
    assert raw_bodies(url) == ["inside"]


def test_sns_or_policy_on_the_message_body_filters_without_crashing(aws: None) -> None:
    policy = {"$or": [{"kind": ["order"]}, {"total": [{"numeric": [">", 100]}]}]}
    topic, url = subscribe("or-body", policy, "MessageBody")
    for message in ({"kind": "order"}, {"kind": "refund", "total": 150}, {"kind": "refund"}):
        client("sns").publish(TopicArn=topic, Message=json.dumps(message))
    assert raw_bodies(url) == ['{"kind": "order"}', '{"kind": "refund", "total": 150}']


def test_sns_anything_but_matches_an_array_with_one_element_outside(aws: None) -> None:
    topic, url = subscribe(
        "sports", {"sports": [{"anything-but": ["rugby", "tennis"]}]}, "MessageBody"
    )
    for message in ({"sports": ["rugby", "baseball"]}, {"sports": ["rugby", "tennis"]}):
        client("sns").publish(TopicArn=topic, Message=json.dumps(message))
    assert raw_bodies(url) == ['{"sports": ["rugby", "baseball"]}']


def test_sns_rejects_a_misspelt_operator_at_subscribe(aws: None) -> None:
    with pytest.raises(ClientError, match="InvalidParameter") as error:
        subscribe("typo", {"price": [{"numric": [">", 1]}]}, "MessageAttributes")
    assert "did you mean 'numeric'?" in str(error.value)


def test_undo_restores_what_was_installed_before() -> None:
    from moto.events.models import EventPattern
    from moto.sns.utils import FilterPolicyMatcher

    before = (EventPattern.matches_event, FilterPolicyMatcher.matches)
    undo = use_conveyor_filters()
    assert getattr(EventPattern.matches_event, "_conveyor_filters", False)
    undo()
    assert (EventPattern.matches_event, FilterPolicyMatcher.matches) == before


# --- the deployer ----------------------------------------------------------------------------


def one_stack(root: Path, resources: dict[str, Any]) -> Path:
    (root / "Unit.template.json").write_text(json.dumps({"Resources": resources}))
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            "Unit": {
                "type": "aws:cloudformation:stack",
                "properties": {"templateFile": "Unit.template.json"},
                "displayName": "Unit",
            }
        },
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_deploy_refuses_a_rule_eventbridge_would_reject(aws: None, tmp_path: Path) -> None:
    rule = {
        "Type": "AWS::Events::Rule",
        "Properties": {"EventPattern": {"detail": {"total": [{"numeric": [">", 10, "<", 5]}]}}},
    }
    with pytest.raises(UnsupportedResource) as error:
        deploy(one_stack(tmp_path, {"Rule": rule}))
    assert error.value.logical_id == "Rule"
    assert error.value.property == "EventPattern"
    assert "empty range" in str(error.value)


def test_deploy_refuses_a_subscription_sns_would_reject(aws: None, tmp_path: Path) -> None:
    resources = {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "Subscription": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "Protocol": "sqs",
                "TopicArn": {"Ref": "Topic"},
                "Endpoint": {"Fn::GetAtt": ["Queue", "Arn"]},
                "FilterPolicy": {"kind": {"order": ["x"]}},
            },
        },
    }
    with pytest.raises(UnsupportedResource) as error:
        deploy(one_stack(tmp_path, resources))
    assert error.value.property == "FilterPolicy"
    assert "nested objects are not allowed" in str(error.value)
