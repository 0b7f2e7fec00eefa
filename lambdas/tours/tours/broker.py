"""Connections to the brokers, created lazily and kept per execution environment.

RabbitMQ (Amazon MQ): the credentials come from the broker's Secrets Manager secret
(``{"username", "password"}``); ``amqps://`` connects with TLS (Amazon MQ serves AMQP over TLS
on 5671 only). Kafka (MSK): the bootstrap brokers come from ``kafka:GetBootstrapBrokers``;
when the cluster offers SASL/IAM (MSK Serverless offers nothing else) the client signs with
the function's role through ``aws-msk-iam-sasl-signer-python`` (OAUTHBEARER over TLS).
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Any
from urllib.parse import quote, urlparse

from handler_kit.clients import lazy_client

_secrets = lazy_client("secretsmanager")
_kafka = lazy_client("kafka")


def broker_credentials(secret_arn: str) -> tuple[str, str]:
    secret = json.loads(_secrets().get_secret_value(SecretId=secret_arn)["SecretString"])
    return str(secret["username"]), str(secret["password"])


def amqp_parameters(endpoint: str, secret_arn: str, **options: Any) -> Any:
    """pika connection parameters for ``endpoint`` with the secret's user."""
    import pika

    username, password = broker_credentials(secret_arn)
    parsed = urlparse(endpoint)
    user, secret = quote(username, safe=""), quote(password, safe="")
    url = f"{parsed.scheme}://{user}:{secret}@{parsed.netloc}/%2F"
    parameters = pika.URLParameters(url)
    if parsed.scheme == "amqps":
        parameters.ssl_options = pika.SSLOptions(ssl.create_default_context(), parsed.hostname)
    for name, value in options.items():
        setattr(parameters, name, value)
    return parameters


def kafka_client_config(cluster_arn: str) -> dict[str, Any]:
    """librdkafka settings to reach the cluster (bootstrap servers and authentication)."""
    brokers = _kafka().get_bootstrap_brokers(ClusterArn=cluster_arn)
    iam = brokers.get("BootstrapBrokerStringSaslIam")
    if iam:
        region = cluster_arn.split(":")[3]
        return {
            "bootstrap.servers": iam,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": _iam_token(region),
        }
    plain = brokers.get("BootstrapBrokerString")
    if not plain:
        raise RuntimeError(f"{cluster_arn} offers no bootstrap brokers this client can use")
    return {"bootstrap.servers": plain, "security.protocol": "PLAINTEXT"}


def _iam_token(region: str) -> Any:
    def token(_config: str) -> tuple[str, float]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        value, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return value, expiry_ms / 1000

    return token


def region() -> str:
    return os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
