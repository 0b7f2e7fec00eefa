"""EventBridge → Step Functions (``Route(kind="stepfunctions")``): each message of the internal
queue added as a target of the rule is an event; it starts one execution of the route's state
machine (input: the event, as EventBridge passes it). The sandbox names the execution after the
event id, so that a demo or ``conveyor trace`` can find it; EventBridge on AWS lets Step Functions
generate the name, so there a redelivered event (at-least-once) starts a second execution, which
the workflow must make harmless (the saga's conditional writes do, tested). Here a redelivered
event finds its name taken (``ExecutionAlreadyExists``): it is traced as a ``duplicate`` and
deleted, never retried forever. The execution then runs in moto's ASL interpreter (in its own
thread); its Lambda tasks reach the in-process handlers through the runtime.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
from botocore.exceptions import ClientError

from conveyor.sandbox.execution import FAKE_CREDENTIALS
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.base import Delivery

_NAME = re.compile(r"[^A-Za-z0-9_-]")


def execution_name(event_id: str) -> str:
    """A valid execution name (1-80 of ``[A-Za-z0-9_-]``) for an event id."""
    return (_NAME.sub("-", event_id) or "event")[:80]


class StepFunctionsTargetSource:
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="stepfunctions"``."""

    kind = "stepfunctions"
    needs_function = False  # the route's target is a state machine, not a function

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._client: Any | None = None

    def _stepfunctions(self) -> Any:
        if self._client is None:
            url = str(self.delivery.sqs.meta.endpoint_url)
            # In-process (mock_aws) the client keeps AWS's own endpoint; a server is local.
            endpoint = None if url.endswith(".amazonaws.com") else url
            self._client = boto3.session.Session(
                aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            ).client(
                "stepfunctions",
                region_name=self.delivery.region,
                endpoint_url=endpoint,
            )
        return self._client

    def pump(self, stack: DeployedStack, route: Route, target: Any) -> int:
        sqs = self.delivery.sqs
        messages = sqs.receive_message(
            QueueUrl=route.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0
        ).get("Messages", [])
        for message in messages:
            body = message.get("Body", "")
            try:
                event_id = str(json.loads(body).get("id") or message["MessageId"])
            except (ValueError, AttributeError):
                event_id = message["MessageId"]
            self.delivery.trace("receive", stack, route, None, (message["MessageId"],))
            name = execution_name(event_id)
            try:
                self._stepfunctions().start_execution(
                    stateMachineArn=route.state_machine_arn, name=name, input=body
                )
                kind = "execution"
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                    raise
                kind = "duplicate"  # a redelivered event: its execution was started before
            self.delivery.trace(
                kind, stack, route, None, (message["MessageId"],), details={"execution": name}
            )
            sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"])
            self.delivery.trace("delete", stack, route, None, (message["MessageId"],))
            self.delivery.count(messages_received=1)
        return len(messages)

    def settle(self) -> int:
        return 0
