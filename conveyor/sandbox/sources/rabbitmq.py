"""The Amazon MQ (RabbitMQ) event source mapping (``Route(kind="rabbitmq")``) against the
local RabbitMQ node, as Lambda's poller runs it:

- it connects with the user of the mapping's ``BASIC_AUTH`` secret, on its ``VIRTUAL_HOST``;
- one poller per mapping (Lambda's RabbitMQ concurrency is 1): it takes up to ``BatchSize``
  messages of the queue unacknowledged (``basic.get``, no auto-ack) and invokes with
  ``rmqMessagesByQueue`` (``<queue>::<vhost>``, base64 data, ``basicProperties``,
  ``redelivered``);
- the function returns: the batch is acknowledged (``delete`` trace); it raises: the batch is
  nacked with requeue (``retry`` trace). The broker redelivers (``redelivered: true``) and,
  for a quorum queue with ``x-delivery-limit``, dead-letters a message past the limit to the
  queue's ``x-dead-letter-exchange``: the broker's own behaviour, not the sandbox's. Lambda
  has no on-failure destination and no partial batch response for RabbitMQ.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from conveyor.sandbox import lambda_events
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.base import Delivery


class RabbitMqPoller:
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="rabbitmq"``."""

    kind = "rabbitmq"

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._channels: dict[tuple[str, str], Any] = {}

    def _channel(self, stack: DeployedStack, route: Route) -> Any:
        import pika

        key = (stack.name, route.source)
        channel = self._channels.get(key)
        if channel is not None and channel.is_open:
            return channel
        options = route.options
        secret = self.delivery.client("secretsmanager").get_secret_value(
            SecretId=options["secret_arn"]
        )
        document = json.loads(secret["SecretString"])
        user, password = (
            quote(str(document["username"]), safe=""),
            quote(str(document["password"]), safe=""),
        )
        vhost = quote(str(options.get("virtual_host", "/")), safe="")
        parameters = pika.URLParameters(
            f"amqp://{user}:{password}@127.0.0.1:{options['port']}/{vhost}"
        )
        channel = pika.BlockingConnection(parameters).channel()
        self._channels[key] = channel
        return channel

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        channel = self._channel(stack, route)
        queue = str(route.options["queue"])
        messages: list[dict[str, Any]] = []
        last_tag = None
        delivery_counts: list[int] = []
        for _ in range(max(1, route.batch_size)):
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            last_tag = method.delivery_tag
            messages.append(
                lambda_events.rabbitmq_message(body, properties, redelivered=method.redelivered)
            )
            headers = properties.headers or {}
            delivery_counts.append(int(headers.get("x-delivery-count", 0)))
        if last_tag is None:
            return 0
        ids = tuple(
            str(m["basicProperties"]["messageId"] or m["basicProperties"]["correlationId"] or i)
            for i, m in enumerate(messages)
        )
        self.delivery.count(messages_received=len(messages))
        self.delivery.trace(
            "receive",
            stack,
            route,
            target,
            ids,
            details={
                "route_kind": "rabbitmq",
                "queue": queue,
                "messages": len(messages),
                "redelivered": sum(1 for m in messages if m["redelivered"]),
            },
        )
        event = lambda_events.rabbitmq_event(
            messages,
            broker_arn=route.queue_arn,
            queue=queue,
            virtual_host=str(route.options.get("virtual_host", "/")),
        )
        result = self.delivery.invoke(
            target,
            event,
            request_id=str(uuid.uuid4()),
            attempt=max(delivery_counts) + 1,
            route=route,
            message_ids=ids,
            records=len(messages),
        )
        if result.ok:
            channel.basic_ack(last_tag, multiple=True)
            self.delivery.count(records_processed=len(messages))
            self.delivery.trace("delete", stack, route, target, ids, details={"acked": len(ids)})
            return len(messages)
        channel.basic_nack(last_tag, multiple=True, requeue=True)
        self.delivery.count_failed(target, len(messages))
        assert result.error is not None
        self.delivery.trace(
            "retry",
            stack,
            route,
            target,
            ids,
            details={
                "reason": f"function error {result.error.type}: nacked with requeue",
                "deliveries": [c + 1 for c in delivery_counts],
            },
        )
        return len(messages)

    def settle(self) -> int:
        return 0  # the broker holds nothing back: a nacked message is requeued at once

    def close(self) -> None:
        for channel in self._channels.values():
            if channel.is_open:
                channel.connection.close()
        self._channels.clear()
