"""Amazon MQ for RabbitMQ: the broker is the sandbox's local RabbitMQ node
(:mod:`conveyor.sandbox.brokers`), recorded in moto's Amazon MQ (control plane only).

- ``AWS::AmazonMQ::Broker`` (engine RABBITMQ): each of ``Users`` is created on the local node
  (``rabbitmqctl add_user``, administrator, all permissions on ``/``), its password read from
  the Secrets Manager dynamic reference the template holds; ``AmqpEndpoints`` is the local
  ``amqp://127.0.0.1:<port>`` (Amazon MQ's is ``amqps://…:5671``: no TLS on loopback).
  Network, instance type, logs and maintenance window have no local effect.
- ``Custom::RabbitMqDefinitions``: the definitions document of the template (exchanges,
  queues with their arguments, bindings) declared on the node with pika, as the custom
  resource's handler POSTs it to the broker's management API on AWS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from conveyor.sandbox.brokers import RABBITMQ, RabbitMqServer
from conveyor.sandbox.model import DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import flag, text, words

_DYNAMIC_SECRET = re.compile(
    r"\{\{resolve:secretsmanager:(?P<id>.+?):SecretString:(?P<key>[^:}]+)(?::[^}]*)?\}\}"
)


def local_rabbitmq(ctx: ProviderContext) -> RabbitMqServer:
    brokers = ctx.state.brokers
    server = brokers.rabbitmq if brokers is not None else None
    if server is None:
        missing = (brokers.missing.get(RABBITMQ) if brokers is not None else None) or (
            "no local RabbitMQ was started for this deployment"
        )
        raise ctx.unsupported(None, f"needs the local RabbitMQ broker: {missing}")
    return server


def _secret_text(ctx: ProviderContext, value: str) -> str:
    """A dynamic reference ``{{resolve:secretsmanager:…:SecretString:key…}}`` resolved."""
    match = _DYNAMIC_SECRET.fullmatch(value)
    if match is None:
        return value
    secret = ctx.client("secretsmanager").get_secret_value(SecretId=match.group("id"))
    return str(json.loads(secret["SecretString"])[match.group("key")])


def _broker(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    if str(props.get("EngineType", "")).upper() != "RABBITMQ":
        raise ctx.unsupported("EngineType", "only RabbitMQ brokers run in the sandbox")
    if flag(props.get("PubliclyAccessible", False)):
        raise ctx.unsupported("PubliclyAccessible", "the local broker listens on loopback only")
    server = local_rabbitmq(ctx)
    users = []
    for user in props.get("Users") or []:
        username = _secret_text(ctx, text(user["Username"]))
        password = _secret_text(ctx, text(user["Password"]))
        try:
            # "--": a generated password may start with "-" (rabbitmqctl would read an option)
            server.ctl("add_user", "--", username, password)
        except RuntimeError as error:  # the node outlives a deployment (tests share it)
            if "already exists" not in str(error):
                raise
            server.ctl("change_password", "--", username, password)
        server.ctl("set_user_tags", username, "administrator")
        server.ctl("set_permissions", "-p", "/", username, ".*", ".*", ".*")
        users.append({"Username": username, "Password": password})
    name = ctx.name(props.get("BrokerName"))
    answer = ctx.client("mq").create_broker(
        BrokerName=name,
        DeploymentMode=text(props.get("DeploymentMode", "SINGLE_INSTANCE")),
        EngineType="RABBITMQ",
        EngineVersion=text(props.get("EngineVersion", "3.13")),
        HostInstanceType=text(props.get("HostInstanceType", "mq.t3.micro")),
        PubliclyAccessible=False,
        AutoMinorVersionUpgrade=flag(props.get("AutoMinorVersionUpgrade", True)),
        SubnetIds=[text(s) for s in props.get("SubnetIds") or []],
        SecurityGroups=[text(s) for s in props.get("SecurityGroups") or []],
        Users=users,
    )
    broker_id = str(answer["BrokerId"])
    return DeployedResource(
        logical_id=ctx.logical_id,
        type=ctx.type,
        physical_id=broker_id,
        attributes={
            "Arn": str(answer["BrokerArn"]),
            "Id": broker_id,
            "AmqpEndpoints": [server.endpoint],
            "ConsoleURLs": [f"http://127.0.0.1:{server.port}"],
            "IpAddresses": ["127.0.0.1"],
            "EngineVersionCurrent": text(props.get("EngineVersion", "3.13")),
        },
        properties=props,
    )


def _definitions(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    import pika

    server = local_rabbitmq(ctx)
    document = props.get("Definitions")
    if isinstance(document, str):
        document = json.loads(document)
    if not isinstance(document, dict):
        raise ctx.unsupported("Definitions", "must be a RabbitMQ definitions document")
    connection = pika.BlockingConnection(pika.URLParameters(server.url))
    try:
        channel = connection.channel()
        for exchange in document.get("exchanges") or []:
            channel.exchange_declare(
                exchange["name"],
                exchange_type=exchange.get("type", "topic"),
                durable=flag(exchange.get("durable", True)),
                auto_delete=flag(exchange.get("auto_delete", False)),
                internal=flag(exchange.get("internal", False)),
                arguments=_arguments(exchange),
            )
        for queue in document.get("queues") or []:
            channel.queue_declare(
                queue["name"],
                durable=flag(queue.get("durable", True)),
                auto_delete=flag(queue.get("auto_delete", False)),
                arguments=_arguments(queue),
            )
        for binding in document.get("bindings") or []:
            if binding.get("destination_type", "queue") != "queue":
                raise ctx.unsupported("Definitions.bindings", "only queue bindings")
            channel.queue_bind(
                binding["destination"],
                binding["source"],
                routing_key=binding.get("routing_key", ""),
                arguments=_arguments(binding),
            )
    finally:
        connection.close()
    console = text(props.get("ConsoleUrl", ""))
    return ctx.resource(f"{console}#definitions", props)


def _arguments(item: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as the broker wants them (CloudFormation turns numbers into strings)."""
    arguments = dict(item.get("arguments") or {})
    for key, value in arguments.items():
        if isinstance(value, str) and value.isdigit():
            arguments[key] = int(value)
    return arguments


PROVIDERS = (
    ResourceProvider(
        "AWS::AmazonMQ::Broker",
        _broker,
        frozenset(
            words(
                "BrokerName DeploymentMode EngineType EngineVersion HostInstanceType "
                "PubliclyAccessible AutoMinorVersionUpgrade AuthenticationStrategy "
                "EncryptionOptions Logs MaintenanceWindowStartTime SecurityGroups SubnetIds "
                "StorageType Users Tags Configuration"
            )
        ),
        name_limit=50,
    ),
    ResourceProvider(
        "Custom::RabbitMqDefinitions",
        _definitions,
        frozenset(words("ServiceToken ConsoleUrl Definitions")),
        provider_note=(
            " (the sandbox declares the template's definitions on the local broker itself)"
        ),
    ),
)
