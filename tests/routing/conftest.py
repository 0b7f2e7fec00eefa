"""Routing tests deploy the synthesized stack with the sandbox deployer (moto, in-process) and
observe where a published event lands, without delivering it to any handler.

What is observed: SQS subscribers and targets are the real queues of the deployment; an SNS →
Lambda subscription or an EventBridge → Lambda target is the internal queue the deployer
subscribes in its place (``Route`` of kind ``sns`` / ``events``), filtered by moto with the
template's filter policy or pattern. Nothing is pumped, so every message stays where routing
put it. Handlers are tested on their own in tests/lambdas.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import REGION, DeployedStack


@dataclass
class Routing:
    """A deployed stack and the queues where its events can be observed."""

    stack: DeployedStack
    session: boto3.session.Session

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    def function_queue(self, handler: str) -> str:
        """The internal queue of the one SNS/EventBridge route to the function ``handler``."""
        (url,) = [
            route.queue_url
            for route in self.stack.routes
            if route.kind in ("sns", "events")
            and self.stack.functions[route.function_logical_id].handler == handler
        ]
        return url

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Every message waiting in ``url`` (deleted as read)."""
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        while batch := sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            for message in batch:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)
        return messages


@pytest.fixture
def deployed(synthesized, aws_credentials) -> Iterator[Any]:
    """``deployed("OrderEvents")`` → :class:`Routing` of that stack deployed alone."""
    with mock_aws():

        def start(topology: str) -> Routing:
            session = boto3.session.Session(region_name=REGION)
            deployment = deploy(
                Path(synthesized["outdir"]),
                session=session,
                stack_names=[f"Conveyor-test-{topology}"],
            )
            return Routing(deployment.stacks[f"Conveyor-test-{topology}"], session)

        yield start
