"""Send an event file into any deployed stack (``conveyor trace <stack> --event FILE``), and
find where its records ended.

An event file names its entry point by one key; the resource is a logical id, a physical
name/URL/ARN, or a unique part of a logical id, and may be left out when the stack has exactly
one resource of that type:

- ``{"queue": …, "body": {…} | "text", "attributes": {…}, "groupId": …}`` → SQS SendMessage
- ``{"topic": …, "message": {…}, "attributes": {…}}`` → SNS Publish
- ``{"bus": …, "source": …, "detail-type": …, "detail": {…}}`` → EventBridge PutEvents
- ``{"stream": …, "partitionKey": …, "data": {…}}`` → Kinesis PutRecord
- ``{"bucket": …, "key": …, "file": "photo.jpg" | "text": …}`` → S3 PutObject
- ``{"api": "POST /orders", "body": {…}, "headers": {…}}`` → the stack's REST API
- ``{"function": …, "payload": {…}}`` → a direct (synchronous) invocation

Message attributes keep their types: a number is sent as ``Number``, a list as
``String.Array``, ``{"DataType": …, "StringValue": …}`` as given, anything else as ``String``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.sandbox.model import DeployedStack

ENTRY_TYPES = {
    "queue": "AWS::SQS::Queue",
    "topic": "AWS::SNS::Topic",
    "bus": "AWS::Events::EventBus",
    "stream": "AWS::Kinesis::Stream",
    "bucket": "AWS::S3::Bucket",
    "function": "AWS::Lambda::Function",
    "api": "AWS::ApiGateway::RestApi",
}


def message_attributes(values: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """SNS/SQS ``MessageAttributes`` that keep each value's type."""
    attributes = {}
    for name, value in values.items():
        if isinstance(value, dict) and "DataType" in value:
            attributes[name] = {k: str(v) for k, v in value.items()}
        elif isinstance(value, bool):
            attributes[name] = {"DataType": "String", "StringValue": str(value).lower()}
        elif isinstance(value, int | float):
            attributes[name] = {"DataType": "Number", "StringValue": str(value)}
        elif isinstance(value, list):
            attributes[name] = {"DataType": "String.Array", "StringValue": json.dumps(value)}
        else:
            attributes[name] = {"DataType": "String", "StringValue": str(value)}
    return attributes


def entry_kind(event: Mapping[str, Any]) -> str | None:
    kinds = [key for key in ENTRY_TYPES if key in event]
    return kinds[0] if len(kinds) == 1 else None


def find_resource(stack: DeployedStack, kind: str, name: Any) -> Any:
    """The deployed resource of ``kind`` named ``name`` (see the module doc)."""
    wanted = ENTRY_TYPES[kind]
    candidates = [r for r in stack.resources.values() if r.type == wanted]
    if kind == "bus" and name in (None, "default"):
        return None  # the default bus
    if name is None:
        if len(candidates) == 1:
            return candidates[0]
        raise ValueError(
            f"{stack.name} has {len(candidates)} {wanted} resources: name one in the event's "
            f"{kind!r} ({', '.join(r.logical_id for r in candidates) or 'none'})"
        )
    text = str(name)
    exact = [r for r in candidates if text in (r.logical_id, r.physical_id, *r.attributes.values())]
    partial = [r for r in candidates if text.lower() in r.logical_id.lower()]
    for found in (exact, partial):
        if len(found) == 1:
            return found[0]
    raise ValueError(
        f"no single {wanted} {text!r} in {stack.name} "
        f"(known: {', '.join(r.logical_id for r in candidates) or 'none'})"
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def send(
    stack: DeployedStack,
    event: Mapping[str, Any],
    *,
    client: Any,
    runtime: Any,
    apis: Any,
    base_dir: Path,
) -> str:
    """Send ``event`` (see the module doc) into ``stack``; one line saying what was sent.

    :param client: ``client(service)`` → a boto3 client of the sandbox.
    :param base_dir: where a relative ``file`` is read from (the event file's folder).
    """
    kind = entry_kind(event)
    if kind is None:
        raise ValueError("the event must name exactly one entry point: " + ", ".join(ENTRY_TYPES))
    if kind == "api":
        return _send_api(stack, event, apis)
    resource = find_resource(stack, kind, event.get(kind) if event.get(kind) != "" else None)
    attributes = message_attributes(event.get("attributes") or {})
    if kind == "queue":
        request: dict[str, Any] = {
            "QueueUrl": resource.physical_id,
            "MessageBody": _text(event.get("body", "")),
        }
        if attributes:
            request["MessageAttributes"] = attributes
        if resource.physical_id.endswith(".fifo"):
            request["MessageGroupId"] = str(event.get("groupId", "trace"))
            request["MessageDeduplicationId"] = str(event.get("deduplicationId", _digest(request)))
        answer = client("sqs").send_message(**request)
        return f"SQS SendMessage to {resource.logical_id}: message {answer['MessageId']}"
    if kind == "topic":
        request = {"TopicArn": resource.physical_id, "Message": _text(event.get("message", ""))}
        if attributes:
            request["MessageAttributes"] = attributes
        answer = client("sns").publish(**request)
        return f"SNS Publish to {resource.logical_id}: message {answer['MessageId']}"
    if kind == "bus":
        entry = {
            "Source": str(event.get("source", "conveyor.trace")),
            "DetailType": str(event.get("detail-type", "trace")),
            "Detail": _text(event.get("detail", {})),
            "EventBusName": resource.physical_id if resource is not None else "default",
        }
        answer = client("events").put_events(Entries=[entry])
        failed = answer.get("FailedEntryCount", 0)
        return f"EventBridge PutEvents to {entry['EventBusName']}: {failed} failed entries"
    if kind == "stream":
        answer = client("kinesis").put_record(
            StreamName=resource.physical_id,
            PartitionKey=str(event.get("partitionKey", "trace")),
            Data=_text(event.get("data", "")).encode(),
        )
        return f"Kinesis PutRecord to {resource.logical_id}: {answer['ShardId']}"
    if kind == "bucket":
        body = (
            (base_dir / str(event["file"])).read_bytes()
            if "file" in event
            else _text(event.get("text", "")).encode()
        )
        key = str(event.get("key") or Path(str(event.get("file", "object"))).name)
        client("s3").put_object(Bucket=resource.physical_id, Key=key, Body=body)
        return f"S3 PutObject s3://{resource.physical_id}/{key} ({len(body)} bytes)"
    result = runtime.invoke(resource.logical_id, event.get("payload", {}), stack=stack.name)
    return f"invoked {resource.logical_id}: {'ok' if result.ok else result.error.type}"


def _send_api(stack: DeployedStack, event: Mapping[str, Any], apis: Any) -> str:
    method, _, path = str(event["api"]).partition(" ")
    candidates = [api for api in apis.apis.values() if api.stack == stack.name]
    if len(candidates) != 1 or not candidates[0].stages:
        raise ValueError(f"{stack.name} has {len(candidates)} REST APIs: expected one")
    api = candidates[0]
    stage = str(event.get("stage") or sorted(api.stages)[0])
    body = event.get("body")
    response = apis.handle(
        method or "POST",
        f"/restapis/{api.id}/{stage}/_user_request_{path or '/'}",
        headers={"Content-Type": "application/json", **(event.get("headers") or {})},
        body=b"" if body is None else _text(body).encode(),
    )
    return f"{method} {path} → {response.status} {response.body.decode(errors='replace').strip()}"


def _digest(request: Mapping[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:64]


def dead_letter_queues(stack: DeployedStack) -> dict[str, str]:
    """Logical id → URL of every queue a redrive policy, a subscription or a target
    dead-letters into, and every function's on-failure queue (where failed records end)."""
    arns: set[str] = set()
    for resource in stack.template.get("Resources", {}).values():
        text = json.dumps(resource.get("Properties", {}))
        if "deadLetterTargetArn" in text or "DeadLetterConfig" in text or "OnFailure" in text:
            arns.update(_referenced(resource.get("Properties", {})))
    found = {}
    for lid, resource in stack.resources.items():
        if resource.type == "AWS::SQS::Queue" and lid in arns:
            found[lid] = resource.physical_id
    return found


def _referenced(value: Any) -> set[str]:
    """Logical ids behind ``Fn::GetAtt``s/``Ref``s under dead-letter keys."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("deadLetterTargetArn", "DeadLetterConfig", "OnFailure"):
                found |= _ids(item)
            found |= _referenced(item)
    elif isinstance(value, list):
        for item in value:
            found |= _referenced(item)
    return found


def _ids(value: Any) -> set[str]:
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return {str(value["Fn::GetAtt"][0])}
        if "Ref" in value:
            return {str(value["Ref"])}
        return {i for item in value.values() for i in _ids(item)}
    if isinstance(value, list):
        return {i for item in value for i in _ids(item)}
    return set()


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def dead_letter_reasons(sqs: Any, url: str, limit: int = 10) -> list[str]:
    """The ``ErrorReason`` of the messages in a DLQ (a peek: they stay in the queue)."""
    answer = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=min(limit, 10),
        VisibilityTimeout=0,
        MessageAttributeNames=["All"],
    )
    reasons = []
    for message in answer.get("Messages", []):
        reason = message.get("MessageAttributes", {}).get("ErrorReason", {}).get("StringValue")
        reasons.append(reason or "(moved by the queue's redrive policy: no reason attribute)")
    return reasons
