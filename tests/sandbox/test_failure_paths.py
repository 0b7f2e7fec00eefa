"""EventBridge and SNS delivery failures: the service's ``Invoke`` of a function fails.

A small template (a function, a rule targeting it, a topic subscribing it, a dead-letter queue)
is deployed by the deployer into ``mock_aws``; the runtime delivers. The failure is EventBridge's
or SNS's ``Invoke`` itself (throttled: ``runtime.faults.throttle("lambda", "Invoke",
target=...)``; or the function does not exist), not a function error.

Expected values come from AWS's documentation:

- EventBridge user guide, "Event retry policy and using dead-letter queues": retries until
  ``MaximumRetryAttempts`` (default 185) or ``MaximumEventAgeInSeconds`` (default 86,400);
  errors such as a missing target are sent to the DLQ without retry; each DLQ message carries
  ``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``, ``ERROR_MESSAGE``,
  ``EXHAUSTED_RETRY_CONDITION``, ``RETRY_ATTEMPTS``; without a DLQ the event is dropped.
- SNS developer guide, "Amazon SNS message delivery retries": AWS-managed endpoints (Lambda,
  SQS) get 100,015 attempts (3 immediate, 2 one second apart, 10 backing off from 1 to 20 s,
  100,000 twenty seconds apart); "Amazon SNS dead-letter queues": client-side errors (a deleted
  endpoint) are not retried; undeliverable messages go to the subscription's DLQ.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import REGION, DeployedStack, Deployment
from conveyor.sandbox.runtime import Runtime, TraceEvent
from tests.support.aws import fake_aws_env

STACK = "Failures"

HANDLER_PY = """
import json
import os


def handler(event, context):
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(json.dumps(event) + "\\n")
"""


def _assembly(root: Path, template: dict[str, Any]) -> Path:
    package = root / "asset.abc123" / "app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "handler.py").write_text(HANDLER_PY)
    files = {
        "abc123": {
            "source": {"path": "asset.abc123", "packaging": "zip"},
            "destinations": {"d": {"bucketName": "b", "objectKey": "abc123.zip"}},
        }
    }
    (root / f"{STACK}.assets.json").write_text(json.dumps({"files": files}))
    (root / f"{STACK}.template.json").write_text(json.dumps(template))
    artifacts = {
        f"{STACK}.assets": {
            "type": "cdk:asset-manifest",
            "properties": {"file": f"{STACK}.assets.json"},
        },
        STACK: {
            "type": "aws:cloudformation:stack",
            "properties": {"templateFile": f"{STACK}.template.json"},
            "dependencies": [f"{STACK}.assets"],
            "displayName": STACK,
        },
    }
    (root / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return root


def template(
    probe_log: Path,
    *,
    retry_policy: dict[str, int] | None = None,
    rule_dlq: bool = True,
    subscription_dlq: bool = True,
    sqs_endpoints: bool = False,
) -> dict[str, Any]:
    target: dict[str, Any] = {"Id": "ToFunction", "Arn": {"Fn::GetAtt": ["Function", "Arn"]}}
    if retry_policy is not None:
        target["RetryPolicy"] = retry_policy
    if rule_dlq:
        target["DeadLetterConfig"] = {"Arn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}}
    subscription: dict[str, Any] = {
        "Protocol": "lambda",
        "TopicArn": {"Ref": "Topic"},
        "Endpoint": {"Fn::GetAtt": ["Function", "Arn"]},
    }
    if subscription_dlq:
        subscription["RedrivePolicy"] = {
            "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}
        }
    resources: dict[str, Any] = {}
    if sqs_endpoints:  # the same rule and topic deliver to a queue too
        queue_target: dict[str, Any] = {"Id": "ToQueue", "Arn": {"Fn::GetAtt": ["Orders", "Arn"]}}
        queue_subscription: dict[str, Any] = {
            "Protocol": "sqs",
            "TopicArn": {"Ref": "Topic"},
            "Endpoint": {"Fn::GetAtt": ["Orders", "Arn"]},
        }
        if rule_dlq:
            queue_target["DeadLetterConfig"] = {"Arn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}}
        if subscription_dlq:
            queue_subscription["RedrivePolicy"] = {
                "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}
            }
        resources = {
            "Orders": {"Type": "AWS::SQS::Queue"},
            "QueueRule": {
                "Type": "AWS::Events::Rule",
                "Properties": {"EventPattern": {"source": ["unit"]}, "Targets": [queue_target]},
            },
            "QueueSubscription": {
                "Type": "AWS::SNS::Subscription",
                "Properties": queue_subscription,
            },
        }
    return {
        "Resources": {
            **resources,
            "DeadLetters": {"Type": "AWS::SQS::Queue"},
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Code": {"S3Bucket": "cdk-assets", "S3Key": "abc123.zip"},
                    "Handler": "app.handler.handler",
                    "Runtime": "python3.14",
                    "Environment": {"Variables": {"PROBE_LOG": str(probe_log)}},
                },
            },
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {"EventPattern": {"source": ["unit"]}, "Targets": [target]},
            },
            "Topic": {"Type": "AWS::SNS::Topic"},
            "Subscription": {"Type": "AWS::SNS::Subscription", "Properties": subscription},
        }
    }


class Sandbox:
    def __init__(self, root: Path, session: Any, **options: Any) -> None:
        self.probe_log = root / "probe.log"
        self.session = session
        assembly = _assembly(root / "cdk.out", template(self.probe_log, **options))
        self.deployment: Deployment = deploy(assembly, session=session)
        self.stack: DeployedStack = self.deployment.stacks[STACK]
        self.traces: list[TraceEvent] = []
        self.sqs = session.client("sqs")

    def runtime(self) -> Runtime:
        return Runtime(self.deployment, session=self.session, on_event=self.traces.append)

    def put_event(self, detail: dict[str, Any]) -> None:
        self.session.client("events").put_events(
            Entries=[{"Source": "unit", "DetailType": "t", "Detail": json.dumps(detail)}]
        )

    def publish(self, message: str) -> None:
        topic = self.stack.resources["Topic"].physical_id
        self.session.client("sns").publish(TopicArn=topic, Message=message)

    def invocations(self) -> list[dict[str, Any]]:
        if not self.probe_log.exists():
            return []
        return [json.loads(line) for line in self.probe_log.read_text().splitlines()]

    def dead_letters(self) -> list[dict[str, Any]]:
        url = self.stack.resources["DeadLetters"].physical_id
        return self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])

    def drop_function(self) -> None:
        """The function is gone (deleted after the rule and subscription were made)."""
        del self.stack.functions["Function"]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        made = iter(range(100))

        def make(**options: Any) -> Sandbox:
            return Sandbox(tmp_path / str(next(made)), session, **options)

        yield make


def attributes(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


# -- EventBridge ----------------------------------------------------------------------------


def test_eventbridge_target_throttled_on_every_invoke_goes_to_its_dlq_after_max_retries(
    sandbox: Any,
) -> None:
    box = sandbox(retry_policy={"MaximumRetryAttempts": 3})
    with (
        box.runtime() as runtime,
        runtime.faults.throttle("lambda", "Invoke", target="Function", times=None) as fault,
    ):
        box.put_event({"orderId": "o-1"})
        report = runtime.pump()
    (dead,) = box.dead_letters()
    assert attributes(dead) == {
        "RULE_ARN": box.stack.resources["Rule"].attributes["Arn"],
        "TARGET_ARN": box.stack.functions["Function"].arn,
        "ERROR_CODE": "THROTTLING",
        "ERROR_MESSAGE": attributes(dead)["ERROR_MESSAGE"],
        "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
        "RETRY_ATTEMPTS": "3",
    }
    assert attributes(dead)["ERROR_MESSAGE"]
    event = json.loads(dead["Body"])
    assert (event["source"], event["detail"]) == ("unit", {"orderId": "o-1"})
    assert fault.fired == 4  # the first attempt and 3 retries
    assert box.invocations() == []
    assert report.dead_lettered == 1
    assert [t.details["error_code"] for t in box.traces if t.kind == "dead-letter"] == [
        "TooManyRequestsException"
    ]


def test_eventbridge_default_retry_policy_makes_185_retries_in_sandbox_time(
    sandbox: Any,
) -> None:
    box = sandbox()
    with (
        box.runtime() as runtime,
        runtime.faults.throttle("lambda", "Invoke", target="Function", times=None) as fault,
    ):
        box.put_event({"orderId": "o-2"})
        runtime.pump()
    (dead,) = box.dead_letters()
    assert attributes(dead)["RETRY_ATTEMPTS"] == "185"
    assert attributes(dead)["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert fault.fired == 186


def test_eventbridge_target_gives_up_at_maximum_event_age(sandbox: Any) -> None:
    box = sandbox(retry_policy={"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 60})
    with (
        box.runtime() as runtime,
        runtime.faults.throttle("lambda", "Invoke", target="Function", times=None) as fault,
    ):
        sent_at = time.time()  # sandbox time
        box.put_event({"orderId": "o-3"})
        runtime.pump()
    (dead,) = box.dead_letters()
    found = attributes(dead)
    assert found["EXHAUSTED_RETRY_CONDITION"] == "MaximumEventAgeInSeconds"
    assert int(found["RETRY_ATTEMPTS"]) == fault.fired - 1
    assert 0 < int(found["RETRY_ATTEMPTS"]) < 185
    # every attempt, the last included, was made within the event's maximum age
    assert int(dead["Attributes"]["SentTimestamp"]) / 1000 - sent_at <= 60 + 1


def test_eventbridge_target_without_dlq_drops_the_event_and_counts_it(sandbox: Any) -> None:
    box = sandbox(retry_policy={"MaximumRetryAttempts": 2}, rule_dlq=False)
    with (
        box.runtime() as runtime,
        runtime.faults.throttle("lambda", "Invoke", target="Function", times=None) as fault,
    ):
        box.put_event({"orderId": "o-4"})
        report = runtime.pump()
    assert fault.fired == 3
    assert report.dropped == 1
    assert report.dead_lettered == 0
    (drop,) = [t for t in box.traces if t.kind == "drop"]
    assert drop.route == "Rule"
    assert drop.details["error_code"] == "TooManyRequestsException"
    assert box.dead_letters() == []
    assert box.invocations() == []


def test_eventbridge_transient_throttle_is_retried_and_delivered_once(sandbox: Any) -> None:
    box = sandbox(retry_policy={"MaximumRetryAttempts": 5})
    with (
        box.runtime() as runtime,
        runtime.faults.throttle("lambda", "Invoke", target="Function", times=2) as fault,
    ):
        box.put_event({"orderId": "o-5"})
        report = runtime.pump()
    assert fault.fired == 2
    (event,) = box.invocations()
    assert event["detail"] == {"orderId": "o-5"}
    assert box.dead_letters() == []
    assert (report.dead_lettered, report.dropped) == (0, 0)


def test_eventbridge_target_function_missing_goes_to_the_dlq_without_retry(
    sandbox: Any,
) -> None:
    box = sandbox(retry_policy={"MaximumRetryAttempts": 5})
    function_arn = box.stack.functions["Function"].arn
    box.drop_function()
    with box.runtime() as runtime:
        box.put_event({"orderId": "o-6"})
        runtime.pump()
    (dead,) = box.dead_letters()
    found = attributes(dead)
    assert found["ERROR_CODE"] == "NO_RESOURCE"
    assert found["TARGET_ARN"] == function_arn
    assert found["RETRY_ATTEMPTS"] == "0"
    assert "EXHAUSTED_RETRY_CONDITION" not in found  # no retry condition ended it
    assert [t for t in box.traces if t.kind == "retry"] == []


# -- SNS ------------------------------------------------------------------------------------


def test_sns_subscription_throttled_on_every_invoke_goes_to_its_dlq_after_the_policy(
    sandbox: Any,
) -> None:
    box = sandbox()
    with (
        box.runtime() as runtime,
        runtime.faults.throttle("lambda", "Invoke", target="Function", times=None) as fault,
    ):
        box.publish("order o-7")
        report = runtime.pump()
    (dead,) = box.dead_letters()
    envelope = json.loads(dead["Body"])  # the SNS message, as an SQS subscription gets it
    assert (envelope["Type"], envelope["Message"]) == ("Notification", "order o-7")
    assert envelope["TopicArn"] == box.stack.resources["Topic"].physical_id
    assert fault.fired == 100_015  # every attempt of the AWS-managed-endpoint policy
    assert box.invocations() == []
    assert report.dead_lettered == 1


def test_sns_transient_throttle_is_retried_and_delivered_once(sandbox: Any) -> None:
    box = sandbox()
    with (
        box.runtime() as runtime,
        runtime.faults.throttle("lambda", "Invoke", target="Function", times=2) as fault,
    ):
        box.publish("order o-8")
        runtime.pump()
    assert fault.fired == 2
    (event,) = box.invocations()
    assert event["Records"][0]["Sns"]["Message"] == "order o-8"
    assert box.dead_letters() == []


def test_sns_subscription_function_missing_is_a_client_error_dead_lettered_at_once(
    sandbox: Any,
) -> None:
    box = sandbox()
    box.drop_function()
    with box.runtime() as runtime:
        box.publish("order o-9")
        report = runtime.pump()
    (dead,) = box.dead_letters()
    assert json.loads(dead["Body"])["Message"] == "order o-9"
    assert [t for t in box.traces if t.kind == "retry"] == []  # client errors are not retried
    assert report.dead_lettered == 1


def test_sns_subscription_without_dlq_drops_the_message_and_counts_it(sandbox: Any) -> None:
    box = sandbox(subscription_dlq=False)
    box.drop_function()
    with box.runtime() as runtime:
        box.publish("order o-10")
        report = runtime.pump()
    assert report.dropped == 1
    (drop,) = [t for t in box.traces if t.kind == "drop"]
    assert drop.route == "Subscription"
    assert drop.details["error_code"] == "ResourceNotFoundException"
    assert box.dead_letters() == []


def test_a_function_error_is_not_the_services_failure_path(sandbox: Any) -> None:
    """The Invoke succeeded: Lambda's asynchronous retries apply, nothing reaches the rule's or
    the subscription's DLQ (no on-failure destination here: Lambda drops the event)."""
    box = sandbox()
    box.stack.functions["Function"].environment["PROBE_LOG"] = "/nonexistent/dir/probe.log"
    with box.runtime() as runtime:
        box.put_event({"orderId": "o-11"})
        box.publish("order o-11")
        report = runtime.pump()
    assert box.dead_letters() == []
    assert report.dead_lettered == 0
    assert report.dropped == 2  # by Lambda, after its own 2 retries of each event


# -- SQS endpoints (delivered by moto) ------------------------------------------------------


def test_an_sqs_target_whose_queue_is_gone_sends_the_event_to_the_dlq(sandbox: Any) -> None:
    """PutEvents succeeds (moto failed it with QueueDoesNotExist); the event is dead-lettered
    at once: a missing target is not retried."""
    box = sandbox(sqs_endpoints=True)
    orders = box.stack.resources["Orders"]
    box.sqs.delete_queue(QueueUrl=orders.physical_id)
    with box.runtime() as runtime:
        box.put_event({"orderId": "o-12"})  # does not raise
        report = runtime.pump()
    (dead,) = box.dead_letters()  # the function target got its event: nothing else here
    found = attributes(dead)
    assert found["RULE_ARN"] == box.stack.resources["QueueRule"].attributes["Arn"]
    assert found["TARGET_ARN"] == orders.attributes["Arn"]
    assert (found["ERROR_CODE"], found["RETRY_ATTEMPTS"]) == ("NO_RESOURCE", "0")
    assert "EXHAUSTED_RETRY_CONDITION" not in found
    assert json.loads(dead["Body"])["detail"] == {"orderId": "o-12"}
    assert report.dead_lettered == 1
    assert len(box.invocations()) == 1


def test_an_sqs_subscription_whose_queue_is_gone_sends_the_message_to_its_dlq(
    sandbox: Any,
) -> None:
    box = sandbox(sqs_endpoints=True)
    box.sqs.delete_queue(QueueUrl=box.stack.resources["Orders"].physical_id)
    with box.runtime() as runtime:
        box.publish("order o-13")  # does not raise
        report = runtime.pump()
    (dead,) = box.dead_letters()
    envelope = json.loads(dead["Body"])  # as the queue would have got it (no raw delivery)
    assert (envelope["Type"], envelope["Message"]) == ("Notification", "order o-13")
    assert report.dead_lettered == 1


def test_sqs_endpoints_gone_without_dlqs_drop_and_count(sandbox: Any) -> None:
    box = sandbox(sqs_endpoints=True, rule_dlq=False, subscription_dlq=False)
    box.sqs.delete_queue(QueueUrl=box.stack.resources["Orders"].physical_id)
    with box.runtime() as runtime:
        box.put_event({"orderId": "o-14"})
        box.publish("order o-14")
        report = runtime.pump()
    assert report.dropped == 2
    drops = [t for t in box.traces if t.kind == "drop"]
    assert sorted(t.details["service"] for t in drops) == ["events", "sns"]
