"""RabbitMqBroker and RabbitMqQueueConsumer: Amazon MQ for RabbitMQ, and a Lambda consumer
through the Amazon MQ event source mapping.

The broker is private (in the given VPC's private subnets, not publicly accessible), its
admin user's credentials are a generated Secrets Manager secret (encrypted with a
customer-managed key, which Lambda's Amazon MQ mapping decrypts with the consumer's role),
its data encrypted at rest (RabbitMQ brokers only take AWS-owned keys), its general logs go
to CloudWatch Logs, minor engine versions upgrade in the given maintenance window.
CloudFormation has no resource for RabbitMQ's exchanges, queues and bindings: a custom
resource POSTs a RabbitMQ definitions document to the broker's management API at deploy.

CDK has no L2 for the Amazon MQ mapping: :class:`RabbitMqQueueConsumer` uses the L1
``AWS::Lambda::EventSourceMapping`` with ``Queues`` and the ``BASIC_AUTH`` secret. Lambda
runs one poller per RabbitMQ mapping (concurrency 1), has no partial batch response and no
on-failure destination for it: the dead-letter queue lives on the broker, as the queue's
dead-letter exchange (with a quorum queue's ``x-delivery-limit``), watched by an alarm.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import CustomResource, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_amazonmq as amazonmq
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr

from constructs import Construct
from conveyor.constructs.checkov import checkov_skip
from conveyor.constructs.defaults import FUNCTION_TIMEOUT, LOG_RETENTION, MEMORY_SIZE_MB
from conveyor.constructs.functions import python_function
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import new_key
from conveyor.constructs.rules import acknowledge, require

# The newest RabbitMQ minor line Amazon MQ runs with automatic minor upgrades (3.13.x).
RABBITMQ_ENGINE_VERSION = "3.13"
# The cheapest instance type (single-instance deployments only).
RABBITMQ_INSTANCE_TYPE = "mq.t3.micro"
DEPLOYMENT_MODES = ("SINGLE_INSTANCE", "CLUSTER_MULTI_AZ")
AMQPS_PORT = 5671
CONSOLE_PORT = 443
# The secret's characters Amazon MQ refuses in a broker password.
_EXCLUDED = ",:=[]{}\"'\\/@ %`"
DEFINITIONS_TYPE = "Custom::RabbitMqDefinitions"


class RabbitMqBroker(Construct):
    """Attributes: ``broker`` (CfnBroker), ``secret``, ``security_group``, ``amqp_endpoint``,
    ``console_url``, ``definitions`` (the custom resource, or None), ``definitions_function``,
    ``encryption_key``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        vpc_subnets: ec2.SubnetSelection | None = None,
        definitions: Mapping[str, Any] | None = None,
        definitions_code: lambda_.Code | None = None,
        definitions_handler: str | None = None,
        definitions_layers: Sequence[lambda_.ILayerVersion] = (),
        instance_type: str = RABBITMQ_INSTANCE_TYPE,
        deployment_mode: str = "SINGLE_INSTANCE",
        engine_version: str = RABBITMQ_ENGINE_VERSION,
        admin_username: str = "conveyor",
        maintenance_day: str = "SUNDAY",
        maintenance_time: str = "03:00",
        log_retention: logs.RetentionDays = LOG_RETENTION,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param vpc: the VPC of the broker (e.g. ``BrokerNetwork.vpc``). Required.
        :param vpc_subnets: Default: the VPC's private subnets; a single-instance broker
            uses the first.
        :param definitions: a RabbitMQ definitions document (``exchanges``, ``queues``,
            ``bindings``) declared at deploy. Default: none (no custom resource).
        :param definitions_code: code of the custom resource's handler (in the VPC, stdlib:
            POST ``/api/definitions``). Required with ``definitions``.
        :param definitions_handler: its entry point. Required with ``definitions``.
        :param definitions_layers: its layers (Powertools).
        :param instance_type: Default: mq.t3.micro (single instance only).
        :param deployment_mode: SINGLE_INSTANCE or CLUSTER_MULTI_AZ (3 nodes, needs an
            m5 instance type). Default: SINGLE_INSTANCE.
        :param engine_version: Default: 3.13 (minor versions upgrade automatically).
        :param admin_username: the broker user of the secret. Default: conveyor.
        :param maintenance_day: Default: SUNDAY. :param maintenance_time: UTC. Default: 03:00.
        :param log_retention: of the custom resource's logs. Default: one month.
        :param encryption_key: encrypts the admin secret, the custom resource's log groups and
            its function's environment. Default: a new customer-managed key.
        :param removal_policy: of the secret, the log groups and a new key. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(
            deployment_mode in DEPLOYMENT_MODES,
            path,
            f"deployment_mode must be one of {', '.join(DEPLOYMENT_MODES)} "
            f"(got {deployment_mode!r})",
        )
        require(
            not (deployment_mode == "CLUSTER_MULTI_AZ" and ".t3." in instance_type),
            path,
            f"a CLUSTER_MULTI_AZ broker needs an m5 instance type (got {instance_type})",
        )
        require(
            definitions is None or (definitions_code is not None and bool(definitions_handler)),
            path,
            "definitions need definitions_code and definitions_handler (the custom resource)",
        )
        require(admin_username != "guest", path, "Amazon MQ refuses the user name 'guest'")
        subnets = vpc.select_subnets(**_subnet_kwargs(vpc_subnets)).subnet_ids
        chosen = subnets[:1] if deployment_mode == "SINGLE_INSTANCE" else subnets

        self.encryption_key: kms.IKey = encryption_key or new_key(
            self,
            "Key",
            description=f"Encrypts the admin secret and the definitions logs of {path}",
            removal_policy=removal_policy,
        )
        self.secret = secretsmanager.Secret(
            self,
            "AdminSecret",
            encryption_key=self.encryption_key,
            description=f"{path}: the broker's admin user (Lambda's BASIC_AUTH secret)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": admin_username}),
                generate_string_key="password",
                exclude_characters=_EXCLUDED,
                password_length=32,
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "Amazon MQ does not read its users from Secrets Manager: rotating the secret "
            "alone would lock Lambda out. Rotate by updating the broker user and the secret "
            "together (a stack update with a new secret value).",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"{path}: AMQPS and the management API, from its own members",
            allow_all_outbound=False,
        )
        # Lambda's mapping runs in the broker's security group: it must reach the broker.
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(AMQPS_PORT), "AMQPS from the group (mapping)"
        )
        self.security_group.add_egress_rule(
            self.security_group, ec2.Port.tcp(AMQPS_PORT), "AMQPS to the broker (mapping)"
        )
        self.security_group.add_egress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443), "the VPC endpoints (mapping)"
        )
        self.broker = amazonmq.CfnBroker(
            self,
            "Broker",
            broker_name=f"{Stack.of(self).stack_name}-{construct_id}"[:50],
            engine_type="RABBITMQ",
            engine_version=engine_version,
            auto_minor_version_upgrade=True,
            deployment_mode=deployment_mode,
            host_instance_type=instance_type,
            publicly_accessible=False,
            subnet_ids=chosen,
            security_groups=[self.security_group.security_group_id],
            authentication_strategy="SIMPLE",
            encryption_options=amazonmq.CfnBroker.EncryptionOptionsProperty(use_aws_owned_key=True),
            logs=amazonmq.CfnBroker.LogListProperty(general=True),
            maintenance_window_start_time=amazonmq.CfnBroker.MaintenanceWindowProperty(
                day_of_week=maintenance_day, time_of_day=maintenance_time, time_zone="UTC"
            ),
            users=[
                amazonmq.CfnBroker.UserProperty(
                    username=admin_username,
                    password=self.secret.secret_value_from_json("password").unsafe_unwrap(),
                )
            ],
        )
        if deployment_mode == "SINGLE_INSTANCE":
            acknowledge(
                self.broker,
                "AwsSolutions-MQ6",
                "A single-instance broker for a sandbox account (~1/10 the cost of a 3-node "
                "cluster); deployment_mode='CLUSTER_MULTI_AZ' for production.",
            )
        self.amqp_endpoint: str = Fn.select(0, self.broker.attr_amqp_endpoints)
        self.console_url: str = Fn.select(0, self.broker.attr_console_ur_ls)

        self.definitions: CustomResource | None = None
        self.definitions_function: lambda_.Function | None = None
        if definitions is not None:
            assert definitions_code is not None
            assert definitions_handler
            self.definitions_function, _ = python_function(
                self,
                code=definitions_code,
                handler=definitions_handler,
                timeout=Duration.seconds(60),
                environment={"BROKER_SECRET_ARN": self.secret.secret_arn},
                layers=definitions_layers,
                log_retention=log_retention,
                removal_policy=removal_policy,
                description=f"{path}: declares the RabbitMQ definitions at deploy",
                encryption_key=self.encryption_key,
                vpc=vpc,
                vpc_subnets=vpc_subnets,
                security_groups=[self.security_group],
            )
            checkov_skip(
                self.definitions_function,
                "CKV_AWS_116",
                "Invoked synchronously by the custom resource provider's framework function "
                "during a deploy: its error becomes the CloudFormation operation's FAILED "
                "status (and rollback); there is no asynchronous event to keep.",
            )
            self.security_group.add_ingress_rule(
                self.security_group, ec2.Port.tcp(CONSOLE_PORT), "management API (definitions)"
            )
            self.security_group.add_egress_rule(
                self.security_group, ec2.Port.tcp(CONSOLE_PORT), "management API (definitions)"
            )
            self.secret.grant_read(self.definitions_function)
            provider = cr.Provider(
                self,
                "DefinitionsProvider",
                on_event_handler=self.definitions_function,
                log_group=encrypted_log_group(
                    self,
                    "DefinitionsProviderLogs",
                    key=self.encryption_key,
                    retention=log_retention,
                    removal_policy=removal_policy,
                ),
            )
            self.definitions = CustomResource(
                self,
                "Definitions",
                service_token=provider.service_token,
                resource_type=DEFINITIONS_TYPE,
                properties={"ConsoleUrl": self.console_url, "Definitions": dict(definitions)},
            )
            self.definitions.node.add_dependency(self.broker)
            _acknowledge_provider(provider)


class RabbitMqQueueConsumer(Construct):
    """A Lambda function reading one queue of a :class:`RabbitMqBroker` through the L1
    Amazon MQ event source mapping.

    Attributes: ``function``, ``log_group``, ``event_source_mapping``, ``errors_alarm``,
    ``dead_letter_alarm`` (on the broker's dead-letter queue depth, or None), ``alarms``,
    ``encryption_key``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        broker: RabbitMqBroker,
        queue: str,
        code: lambda_.Code,
        handler: str,
        dead_letter_queue: str | None = None,
        virtual_host: str = "/",
        batch_size: int = 1,
        max_batching_window: Duration | None = None,
        function_timeout: Duration | None = None,
        memory_size: int = MEMORY_SIZE_MB,
        environment: Mapping[str, str] | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
        log_retention: logs.RetentionDays = LOG_RETENTION,
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param broker: the broker. Required. :param queue: the queue it reads. Required.
        :param code: the consumer's code. :param handler: its entry point (it gets
            ``rmqMessagesByQueue``; raising nacks the whole batch with requeue).
        :param dead_letter_queue: the queue the broker dead-letters to (alarmed on its
            depth). Default: none (no alarm; a nacked message is then redelivered forever
            unless the queue has a delivery limit).
        :param virtual_host: Default: ``/``.
        :param batch_size: messages per invocation, 1-10,000. Default: 1 — Lambda has no
            partial batch response for RabbitMQ, so one poison message fails (and, after the
            delivery limit, dead-letters) only itself.
        :param max_batching_window: 0-300 s. Default: none (Lambda's 500 ms).
        :param function_timeout: Default: 30 seconds. :param memory_size: MB. Default: 256.
        :param environment: extra variables. :param layers: Lambda layers.
        :param log_retention: Default: one month. :param alarm_actions: of the alarms.
        :param encryption_key: encrypts the log group and the environment variables.
            Default: the broker's key (``broker.encryption_key``).
        :param removal_policy: of the log group. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(1 <= batch_size <= 10_000, path, f"batch_size must be 1-10,000 ({batch_size})")
        require(bool(queue), path, "queue must be named")
        self.encryption_key: kms.IKey = encryption_key or broker.encryption_key
        self.function, self.log_group = python_function(
            self,
            code=code,
            handler=handler,
            timeout=function_timeout or FUNCTION_TIMEOUT,
            memory_size=memory_size,
            environment=environment,
            layers=layers,
            log_retention=log_retention,
            removal_policy=removal_policy,
            encryption_key=self.encryption_key,
        )
        checkov_skip(
            self.function,
            "CKV_AWS_116",
            "Invoked synchronously by its Amazon MQ event source mapping: a failed batch is "
            "nacked and redelivered by the broker, which dead-letters it past the queue's "
            "delivery limit (its dead-letter exchange); a function DLQ only serves "
            "asynchronous invocations.",
        )
        role = self.function.role
        assert role is not None
        # The mapping reads the BASIC_AUTH secret with this role: grant_read also lets it
        # decrypt with the secret's key (through Secrets Manager only).
        broker.secret.grant_read(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["mq:DescribeBroker"], resources=[broker.broker.attr_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeVpcs",
                ],
                resources=["*"],
            )
        )
        self.event_source_mapping = lambda_.CfnEventSourceMapping(
            self,
            "Mapping",
            function_name=self.function.function_name,
            event_source_arn=broker.broker.attr_arn,
            queues=[queue],
            batch_size=batch_size,
            maximum_batching_window_in_seconds=(
                int(max_batching_window.to_seconds()) if max_batching_window else None
            ),
            source_access_configurations=[
                lambda_.CfnEventSourceMapping.SourceAccessConfigurationProperty(
                    type="BASIC_AUTH", uri=broker.secret.secret_arn
                ),
                lambda_.CfnEventSourceMapping.SourceAccessConfigurationProperty(
                    type="VIRTUAL_HOST", uri=virtual_host
                ),
            ],
        )
        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None
        self.event_source_mapping.node.add_dependency(policy)
        if broker.definitions is not None:
            self.event_source_mapping.node.add_dependency(broker.definitions)
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "Lambda's Amazon MQ mapping creates its network interfaces in the broker's VPC "
            "with the function's role; EC2's Describe*/network-interface actions take no "
            "resource-level scope.",
        )
        checkov_skip(
            policy,
            "CKV_AWS_111",
            "Lambda's Amazon MQ mapping creates and deletes its network interfaces in the "
            "broker's VPC with the function's role: the interfaces do not exist before Lambda "
            "creates them, so no ARN can name them at synth (AWS's "
            "AWSLambdaVPCAccessExecutionRole grants the same actions on '*'); every other "
            "statement names its resource.",
        )
        self.errors_alarm = cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            metric=self.function.metric_errors(period=Duration.minutes(1), statistic="Sum"),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"{path}: invocations failed; the mapping nacks the batch, the broker "
                "redelivers it and dead-letters it past the queue's delivery limit."
            ),
        )
        self.dead_letter_alarm: cloudwatch.Alarm | None = None
        if dead_letter_queue:
            self.dead_letter_alarm = cloudwatch.Alarm(
                self,
                "DeadLetterAlarm",
                metric=cloudwatch.Metric(
                    namespace="AWS/AmazonMQ",
                    metric_name="MessageCount",
                    dimensions_map={
                        "Broker": broker.broker.broker_name,
                        "VirtualHost": virtual_host,
                        "Queue": dead_letter_queue,
                    },
                    statistic="Maximum",
                    period=Duration.minutes(5),
                ),
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=(
                    f"{path}: messages are in the broker's dead-letter queue "
                    f"{dead_letter_queue} (they failed past the delivery limit): inspect, fix, "
                    "shovel them back."
                ),
            )
        self.alarms = [a for a in (self.errors_alarm, self.dead_letter_alarm) if a is not None]
        for action in alarm_actions:
            for alarm in self.alarms:
                alarm.add_alarm_action(action)


def _subnet_kwargs(selection: ec2.SubnetSelection | None) -> dict[str, Any]:
    if selection is None:
        return {}
    return {
        key: getattr(selection, key)
        for key in ("subnet_type", "subnet_group_name", "availability_zones", "subnets")
        if getattr(selection, key, None) is not None
    }


def _acknowledge_provider(provider: cr.Provider) -> None:
    """The CDK custom-resource framework's own function (outside the VPC, AWS-maintained)."""
    for child in provider.node.find_all():
        if isinstance(child, lambda_.Function):
            acknowledge(
                child,
                "AwsSolutions-L1",
                "The custom resource framework function: CDK pins its Node.js runtime.",
            )
        if isinstance(child, iam.Role):
            acknowledge(
                child,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "The custom resource framework function's role (CDK-managed): its own logs.",
            )
        if isinstance(child, iam.Policy):
            acknowledge(
                child,
                "AwsSolutions-IAM5[Resource::<" + _logical_id_placeholder(provider) + ".Arn>:*]",
                "The framework invokes the definitions function (any version): that one "
                "function only.",
            )


def _logical_id_placeholder(provider: cr.Provider) -> str:
    function = provider.on_event_handler
    child = function.node.default_child
    assert child is not None
    return Stack.of(provider).get_logical_id(child)  # type: ignore[arg-type]
