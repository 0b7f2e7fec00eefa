"""Amazon VPC (EC2 networking): the VPC, subnets, route tables, security groups and endpoints
of the broker topologies are skipped: the local brokers listen on loopback, every handler
reaches them directly, and moto enforces no network path."""

from __future__ import annotations

from conveyor.sandbox.providers.base import ResourceProvider

PROVIDERS = (
    ResourceProvider(
        "AWS::EC2::",
        skip_reason=(
            "networking is not emulated: the local brokers listen on 127.0.0.1 and every "
            "handler reaches them and moto directly"
        ),
    ),
)
