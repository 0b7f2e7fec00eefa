"""The Accounts topology in the sandbox: commands through the API's Lambda proxy integration
(API Gateway events built here, the function invoked in-process), the balance query, the
event store, the projection, the rebuild, and the subscribers' outputs.

Used by the demo scenario (``make deploy``) and the behaviour tests. Everything is found
through the stack's outputs; expected values come from the course's example.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.lambdas.accounts.accounts import contract
from conveyor.sandbox import lambda_events

ACCOUNTS = f"/{contract.ACCOUNTS_RESOURCE}"
ACCOUNT = f"{ACCOUNTS}/{{{contract.ACCOUNT_ID_PARAMETER}}}"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class AccountsDemo:
    """``client(service)`` gives a boto3 client of the sandbox; ``output(name)`` a stack
    output; ``runtime`` the sandbox runtime (``invoke``, ``pump``)."""

    def __init__(
        self,
        client: Callable[[str], Any],
        output: Callable[[str], str],
        runtime: Any,
        *,
        stack: str | None = None,
    ) -> None:
        self.client = client
        self.output = output
        self.runtime = runtime
        self.stack = stack

    # -- the API (Lambda proxy integration) ----------------------------------------------------

    def call(
        self,
        function_output: str,
        method: str,
        path: str,
        resource: str,
        *,
        body: Any = None,
        account_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        event = lambda_events.api_gateway_proxy_event(
            method,
            path,
            resource=resource,
            path_parameters={contract.ACCOUNT_ID_PARAMETER: account_id} if account_id else None,
            body=body,
            headers=headers,
        )
        result = self.runtime.invoke(self.output(function_output), event, stack=self.stack)
        if result.error is not None:
            raise RuntimeError(f"{function_output}: {result.error.type}: {result.error.message}")
        response = result.response
        return Answer(int(response["statusCode"]), json.loads(response.get("body") or "{}"))

    def open(self, owner: str, phone: str = "+33600000000", **headers: str) -> Answer:
        return self.call(
            "CommandsFunctionName",
            "POST",
            ACCOUNTS,
            ACCOUNTS,
            body={contract.OWNER: owner, contract.PHONE: phone},
            headers=headers or None,
        )

    def deposit(self, account_id: str, amount: int, **extra: Any) -> Answer:
        return self._money(contract.DEPOSITS_RESOURCE, account_id, amount, **extra)

    def withdraw(self, account_id: str, amount: int, **extra: Any) -> Answer:
        return self._money(contract.WITHDRAWALS_RESOURCE, account_id, amount, **extra)

    def _money(self, resource: str, account_id: str, amount: int, **extra: Any) -> Answer:
        return self.call(
            "CommandsFunctionName",
            "POST",
            f"{ACCOUNTS}/{account_id}/{resource}",
            f"{ACCOUNT}/{resource}",
            body={contract.AMOUNT: amount, **extra},
            account_id=account_id,
        )

    def balance(self, account_id: str) -> Answer:
        return self.call(
            "QueriesFunctionName",
            "GET",
            f"{ACCOUNTS}/{account_id}",
            ACCOUNT,
            account_id=account_id,
        )

    # -- what the topology holds ----------------------------------------------------------------

    def stored_events(self, account_id: str) -> list[tuple[int, str, dict[str, Any]]]:
        """(version, type, data) of the account's events, in version order."""
        items = self.client("dynamodb").query(
            TableName=self.output("EventStoreTableName"),
            KeyConditionExpression="aggregateId = :id",
            ExpressionAttributeValues={":id": {"S": account_id}},
            ConsistentRead=True,
        )["Items"]
        return [(int(i["version"]["N"]), i["type"]["S"], json.loads(i["data"]["S"])) for i in items]

    def read_model(self, table_output: str = "BalancesTableName") -> dict[str, tuple[int, int]]:
        """accountId → (balance, lastVersion) of a read model table."""
        items = self.client("dynamodb").scan(TableName=self.output(table_output))["Items"]
        return {
            i["aggregateId"]["S"]: (int(i[contract.BALANCE]["N"]), int(i["lastVersion"]["N"]))
            for i in items
        }

    def rebuild(self) -> dict[str, Any]:
        result = self.runtime.invoke(self.output("RebuildFunctionName"), {}, stack=self.stack)
        if result.error is not None:
            raise RuntimeError(f"rebuild: {result.error.type}: {result.error.message}")
        return dict(result.response)

    def audited(self) -> list[tuple[str, int, str]]:
        """(accountId, version, type) of every audited event, sorted."""
        items = self.client("dynamodb").scan(TableName=self.output("AuditTableName"))["Items"]
        return sorted(
            (i["aggregateId"]["S"], int(i["version"]["N"]), i["type"]["S"]) for i in items
        )

    def subscribe_sms(self) -> str:
        """An SQS queue subscribed to the notifications topic (what an SMS provider would
        receive); returns its URL."""
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName="sandbox-sms-inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.client("sns").subscribe(
            TopicArn=self.output("NotificationTopicArn"),
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        return str(url)

    def sms(self, url: str) -> list[str]:
        sqs = self.client("sqs")
        texts: list[str] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return sorted(texts)
            for message in messages:
                texts.append(message["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def queue_depth(self, output: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.output(output),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
