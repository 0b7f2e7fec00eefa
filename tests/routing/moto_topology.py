"""Re-create a synthesized template's routing in moto, to publish and observe.

moto's CloudFormation silently drops SNS subscriptions (DESIGN.md), so the routing pieces are
read from the real template and created through moto's SNS/SQS/EventBridge APIs:

- every ``AWS::SNS::Subscription`` becomes a moto subscription of the same topic with the
  template's ``FilterPolicy``, ``FilterPolicyScope`` and ``RawMessageDelivery``; its endpoint
  is an SQS probe queue. For SQS endpoints that is what AWS does; Lambda and e-mail endpoints
  are replaced by a probe because moto cannot invoke Lambda without Docker — the filter, which
  is what these tests prove, is evaluated before delivery whatever the protocol.
- every ``AWS::Events::Rule`` becomes a moto rule on a bus of the same name with the
  template's ``EventPattern``; each target is replaced by an SQS probe queue.

Probes are keyed by the logical ID of the endpoint/target resource (a queue or a function).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


def _ref_id(value: Any) -> str:
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    raise ValueError(f"not a Ref/GetAtt: {value!r}")


@dataclass
class Probes:
    sqs: Any
    urls: dict[str, str] = field(default_factory=dict)

    def create(self, name: str) -> str:
        url = self.sqs.create_queue(QueueName=name[:80])["QueueUrl"]
        self.urls[name] = url
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    def drain(self, name: str) -> list[dict[str, Any]]:
        """Every message waiting in the probe for ``name`` (deleted as read)."""
        url = self.urls[name]
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)


def deploy_sns_routing(
    template: dict[str, Any], sns: Any, sqs: Any
) -> tuple[dict[str, str], Probes]:
    """Topics (logical id → moto ARN) and the probes of every subscription endpoint."""
    resources = template["Resources"]
    topics = {
        lid: sns.create_topic(Name=lid)["TopicArn"]
        for lid, resource in resources.items()
        if resource["Type"] == "AWS::SNS::Topic"
    }
    probes = Probes(sqs)
    for resource in resources.values():
        if resource["Type"] != "AWS::SNS::Subscription":
            continue
        props = resource["Properties"]
        endpoint = props["Endpoint"]
        name = endpoint if isinstance(endpoint, str) else _ref_id(endpoint)
        name = re.sub(r"[^A-Za-z0-9_-]", "_", name.replace("@", "_at_"))
        arn = probes.create(name)
        attributes = {"RawMessageDelivery": str(props.get("RawMessageDelivery", False)).lower()}
        if "FilterPolicy" in props:
            attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
            attributes["FilterPolicyScope"] = props.get("FilterPolicyScope", "MessageAttributes")
        sns.subscribe(
            TopicArn=topics[_ref_id(props["TopicArn"])],
            Protocol="sqs",
            Endpoint=arn,
            Attributes=attributes,
        )
    return topics, probes


def deploy_event_routing(
    template: dict[str, Any], events: Any, sqs: Any
) -> tuple[dict[str, str], Probes]:
    """Buses (logical id → moto bus name) and the probes of every rule target."""
    resources = template["Resources"]
    buses = {}
    for lid, resource in resources.items():
        if resource["Type"] == "AWS::Events::EventBus":
            events.create_event_bus(Name=lid)
            buses[lid] = lid
    probes = Probes(sqs)
    for lid, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        props = resource["Properties"]
        bus = buses[_ref_id(props["EventBusName"])]
        events.put_rule(Name=lid, EventBusName=bus, EventPattern=json.dumps(props["EventPattern"]))
        targets = []
        for index, target in enumerate(props["Targets"]):
            arn = probes.create(_ref_id(target["Arn"]))
            targets.append({"Id": f"t{index}", "Arn": arn})
        events.put_targets(Rule=lid, EventBusName=bus, Targets=targets)
    return buses, probes


def add_pattern_probe(
    events: Any, probes: Probes, bus: str, name: str, pattern: dict[str, Any]
) -> None:
    """A rule with ``pattern`` delivering to a probe named ``name`` (e.g. an archive's pattern)."""
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule=name, EventBusName=bus, Targets=[{"Id": "probe", "Arn": probes.create(name)}]
    )
