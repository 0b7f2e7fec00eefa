"""BrokerNetwork: a VPC for private brokers (Amazon MQ, MSK) sized for a sandbox account.

Private isolated subnets in two Availability Zones (MSK Serverless needs two; an Amazon MQ
single-instance broker uses the first), **no NAT gateway**: what runs in the VPC reaches AWS
through VPC endpoints instead — interface endpoints for Secrets Manager (the broker's
credentials), STS and Lambda (what Lambda's Amazon MQ and MSK event source mappings need
inside the broker's VPC), and any others asked for (``kafka`` for ``GetBootstrapBrokers``); a
gateway endpoint for DynamoDB (free). VPC flow logs go to a CloudWatch log group encrypted
with a customer-managed key (checkov CKV_AWS_158).

An existing VPC can be given instead (``vpc=``); it must then provide these routes itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from constructs import Construct
from conveyor.constructs.defaults import LOG_RETENTION
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import new_key
from conveyor.constructs.rules import acknowledge, require

# What Lambda's Amazon MQ and MSK event source mappings reach from inside the broker's VPC,
# and the broker credentials' secret.
DEFAULT_INTERFACE_ENDPOINTS: tuple[str, ...] = ("secretsmanager", "sts", "lambda")
NEW_VPC_CIDR = "10.40.0.0/16"


class BrokerNetwork(Construct):
    """Attributes: ``vpc``, ``subnets`` (SubnetSelection), ``endpoint_security_group``,
    ``interface_endpoints`` (service -> endpoint), ``flow_log`` and ``flow_log_group`` (None
    for a given VPC), ``encryption_key`` (of the flow log group; None for a given VPC)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc | None = None,
        max_azs: int = 2,
        nat_gateways: int = 0,
        interface_endpoints: Sequence[str] = DEFAULT_INTERFACE_ENDPOINTS,
        log_retention: logs.RetentionDays = LOG_RETENTION,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param vpc: an existing VPC (its private subnets are used). Default: a new VPC.
        :param max_azs: Availability Zones of a new VPC, 2-3. Default: 2.
        :param nat_gateways: NAT gateways of a new VPC (then its subnets are private with
            egress). Default: 0 — the VPC endpoints are enough for the brokers' Lambdas.
        :param interface_endpoints: services reached through interface endpoints. Default:
            secretsmanager, sts, lambda. A DynamoDB gateway endpoint is always added.
        :param log_retention: of the flow log group. Default: one month.
        :param encryption_key: encrypts the flow log group of a new VPC (its policy is extended
            to let CloudWatch Logs use it). Default: a new customer-managed key.
        :param removal_policy: of the flow log group and its key. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(2 <= max_azs <= 3, path, f"max_azs must be 2 or 3 (got {max_azs})")
        require(nat_gateways >= 0, path, f"nat_gateways must be >= 0 (got {nat_gateways})")
        self.flow_log: ec2.FlowLog | None = None
        self.flow_log_group: logs.LogGroup | None = None
        self.encryption_key: kms.IKey | None = None
        subnet_type = (
            ec2.SubnetType.PRIVATE_WITH_EGRESS if nat_gateways else ec2.SubnetType.PRIVATE_ISOLATED
        )
        if vpc is None:
            subnets = [
                ec2.SubnetConfiguration(name="Private", subnet_type=subnet_type, cidr_mask=24)
            ]
            if nat_gateways:
                subnets.append(
                    ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC)
                )
            created = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(NEW_VPC_CIDR),
                max_azs=max_azs,
                nat_gateways=nat_gateways,
                subnet_configuration=subnets,
                restrict_default_security_group=False,
            )
            self.encryption_key = encryption_key or new_key(
                self,
                "FlowLogsKey",
                description=f"Encrypts the VPC flow logs of {path}",
                removal_policy=removal_policy,
            )
            self.flow_log_group = encrypted_log_group(
                self,
                "FlowLogs",
                key=self.encryption_key,
                retention=log_retention,
                removal_policy=removal_policy,
            )
            self.flow_log = created.add_flow_log(
                "FlowLog",
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
            )
            vpc = created
            cidr = NEW_VPC_CIDR
        else:
            cidr = vpc.vpc_cidr_block
        self.vpc: ec2.IVpc = vpc
        self.subnets = ec2.SubnetSelection(subnet_type=subnet_type)
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=vpc,
            description=f"{path}: HTTPS to the VPC endpoints from inside the VPC",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from the VPC"
        )
        if Token.is_unresolved(cidr):
            acknowledge(
                self.endpoint_security_group,
                "AwsSolutions-EC23",
                "Ingress is HTTPS from the given VPC's own CIDR block (a token at synth).",
            )
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        for service in dict.fromkeys(interface_endpoints):
            self.interface_endpoints[service] = vpc.add_interface_endpoint(
                f"{service.title().replace('-', '')}Endpoint",
                service=ec2.InterfaceVpcEndpointAwsService(service),
                subnets=self.subnets,
                security_groups=[self.endpoint_security_group],
                private_dns_enabled=True,
                open=False,  # the group allows HTTPS from the VPC above
            )
        vpc.add_gateway_endpoint(
            "DynamoDbEndpoint",
            service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
            subnets=[self.subnets],
        )
