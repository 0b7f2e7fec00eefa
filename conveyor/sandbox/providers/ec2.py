"""Amazon VPC (EC2 networking): the VPC, subnets, route tables, security groups, endpoints
and flow logs of the broker topologies are skipped: the local brokers listen on loopback,
every handler reaches them directly, and moto enforces no network path. Other EC2 types
(instances…) stay unsupported."""

from __future__ import annotations

from conveyor.sandbox.providers.base import ResourceProvider

_REASON = (
    "networking is not emulated: the local brokers listen on 127.0.0.1 and every handler "
    "reaches them and moto directly"
)
NETWORK_TYPES = (
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::Route",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::NatGateway",
    "AWS::EC2::EIP",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::VPCEndpoint",
    "AWS::EC2::FlowLog",
)

PROVIDERS = tuple(ResourceProvider(kind, skip_reason=_REASON) for kind in NETWORK_TYPES)
