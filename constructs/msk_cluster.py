"""MskCluster and MskTopicConsumer: an MSK cluster (Serverless by default) with IAM access
control, its topics, and a Lambda consumer through the MSK event source mapping.

- The cluster is private (the given VPC's private subnets, two AZs at least), clients
  authenticate with IAM (SASL/IAM over TLS; MSK Serverless supports nothing else);
  ``provisioned=True`` gives a provisioned cluster instead (kafka.t3.small brokers, one per
  subnet, TLS in transit, IAM auth, broker logs to CloudWatch).
- Topics are ``AWS::MSK::Topic`` resources (in the CloudFormation spec of aws-cdk-lib 2.275),
  created before any mapping that reads them: a mapping on a missing topic stays disabled.
- :class:`MskTopicConsumer`: the L1 mapping (CDK's ``ManagedKafkaEventSource`` has no bisect,
  retries or provisioned pollers) with ``ReportBatchItemFailures``, bisect on error, bounded
  retries and record age, an encrypted SQS on-failure destination (it receives the offset
  range, not the records), provisioned pollers (what MSK's error handling requires), the
  consumer group, IAM for the cluster, topic and group, and alarms on errors and on the
  failure queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_msk as msk

from constructs import Construct
from conveyor.constructs.checkov import checkov_skip
from conveyor.constructs.defaults import (
    FUNCTION_TIMEOUT,
    LOG_RETENTION,
    MEMORY_SIZE_MB,
    STREAM_BATCH_SIZE,
    STREAM_MAX_RECORD_AGE,
    STREAM_RETRY_ATTEMPTS,
)
from conveyor.constructs.functions import acknowledge_encrypted_send, python_function
from conveyor.constructs.queues import dead_letter_alarm, dead_letter_queue, new_key
from conveyor.constructs.rules import acknowledge, require, seconds

KAFKA_IAM_PORT = 9098  # SASL/IAM over TLS
PROVISIONED_KAFKA_VERSION = "3.6.0"
PROVISIONED_INSTANCE_TYPE = "kafka.t3.small"
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


class MskCluster(Construct):
    """Attributes: ``cluster`` (CfnServerlessCluster or CfnCluster), ``cluster_arn``,
    ``cluster_name``, ``security_group``, ``topics`` (name -> CfnTopic), ``broker_log_group``
    (provisioned only)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        vpc_subnets: ec2.SubnetSelection | None = None,
        topics: Mapping[str, int] | None = None,
        provisioned: bool = False,
        kafka_version: str = PROVISIONED_KAFKA_VERSION,
        instance_type: str = PROVISIONED_INSTANCE_TYPE,
        log_retention: logs.RetentionDays = LOG_RETENTION,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param vpc: the cluster's VPC (e.g. ``BrokerNetwork.vpc``). Required.
        :param vpc_subnets: Default: the VPC's private subnets (two AZs at least).
        :param topics: topic name -> partition count, created with the cluster.
            Default: none.
        :param provisioned: a provisioned cluster instead of MSK Serverless. Default: off.
        :param kafka_version: provisioned only. Default: 3.6.0.
        :param instance_type: provisioned only. Default: kafka.t3.small.
        :param log_retention: of the provisioned brokers' logs. Default: one month.
        :param removal_policy: of that log group. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        selected = (
            vpc.select_subnets()
            if vpc_subnets is None
            else vpc.select_subnets(subnet_type=vpc_subnets.subnet_type)
        )
        subnet_ids = selected.subnet_ids
        require(len(subnet_ids) >= 2, path, "MSK needs subnets in at least two AZs")
        for name, partitions in (topics or {}).items():
            require(1 <= partitions <= 1000, path, f"topic {name}: 1-1,000 partitions")
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"{path}: Kafka (SASL/IAM over TLS) from its own members",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(KAFKA_IAM_PORT), "Kafka IAM from the group"
        )
        self.security_group.add_egress_rule(
            self.security_group, ec2.Port.tcp(KAFKA_IAM_PORT), "Kafka IAM to the cluster"
        )
        self.security_group.add_egress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443), "the VPC endpoints"
        )
        self.cluster_name = f"{Stack.of(self).stack_name}-{construct_id}"[:64]
        iam_auth = {"sasl": {"iam": {"enabled": True}}}
        self.broker_log_group: logs.LogGroup | None = None
        self.cluster: msk.CfnServerlessCluster | msk.CfnCluster
        if not provisioned:
            self.cluster = msk.CfnServerlessCluster(
                self,
                "Cluster",
                cluster_name=self.cluster_name,
                client_authentication=iam_auth,
                vpc_configs=[
                    msk.CfnServerlessCluster.VpcConfigProperty(
                        subnet_ids=subnet_ids,
                        security_groups=[self.security_group.security_group_id],
                    )
                ],
            )
            replication = 3
        else:
            self.broker_log_group = logs.LogGroup(
                self, "BrokerLogs", retention=log_retention, removal_policy=removal_policy
            )
            self.cluster = msk.CfnCluster(
                self,
                "Cluster",
                cluster_name=self.cluster_name,
                kafka_version=kafka_version,
                number_of_broker_nodes=len(subnet_ids),
                broker_node_group_info=msk.CfnCluster.BrokerNodeGroupInfoProperty(
                    client_subnets=subnet_ids,
                    instance_type=instance_type,
                    security_groups=[self.security_group.security_group_id],
                ),
                client_authentication=iam_auth,
                encryption_info=msk.CfnCluster.EncryptionInfoProperty(
                    encryption_in_transit=msk.CfnCluster.EncryptionInTransitProperty(
                        client_broker="TLS", in_cluster=True
                    )
                ),
                logging_info=msk.CfnCluster.LoggingInfoProperty(
                    broker_logs=msk.CfnCluster.BrokerLogsProperty(
                        cloud_watch_logs=msk.CfnCluster.CloudWatchLogsProperty(
                            enabled=True, log_group=self.broker_log_group.log_group_name
                        )
                    )
                ),
            )
            replication = min(3, len(subnet_ids))
        self.cluster_arn: str = self.cluster.attr_arn
        self.topics: dict[str, msk.CfnTopic] = {}
        for name, partitions in (topics or {}).items():
            self.topics[name] = msk.CfnTopic(
                self,
                f"Topic{''.join(p.title() for p in name.replace('.', '_').split('_'))}",
                cluster_arn=self.cluster_arn,
                topic_name=name,
                partition_count=partitions,
                replication_factor=replication,
            )

    def topic_arn(self, topic: str) -> str:
        """``arn:…:topic/<cluster name>/<cluster uuid>/<topic>`` (IAM resource)."""
        return self._sub("topic", topic)

    def group_arn(self, group: str) -> str:
        return self._sub("group", group)

    def _sub(self, kind: str, name: str) -> str:
        from aws_cdk import Fn

        # cluster ARN: arn:<p>:kafka:<r>:<a>:cluster/<name>/<uuid>
        parts = Fn.split("/", self.cluster_arn)
        prefix = Fn.select(0, Fn.split(":cluster/", self.cluster_arn))
        return Fn.join(
            "", [prefix, f":{kind}/", Fn.select(1, parts), "/", Fn.select(2, parts), f"/{name}"]
        )

    def grant_produce(self, grantee: iam.IGrantable, topic: str) -> None:
        """Connect, write (idempotently: the producer id), and read the bootstrap brokers."""
        self._grant(grantee, topic, ["kafka-cluster:WriteData", "kafka-cluster:DescribeTopic"])
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:WriteDataIdempotently"], resources=[self.cluster_arn]
            )
        )

    def _grant(self, grantee: iam.IGrantable, topic: str, topic_actions: list[str]) -> None:
        principal = grantee.grant_principal
        principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "kafka-cluster:Connect",
                    "kafka-cluster:DescribeCluster",
                    "kafka:DescribeClusterV2",
                    "kafka:GetBootstrapBrokers",
                ],
                resources=[self.cluster_arn],
            )
        )
        principal.add_to_principal_policy(
            iam.PolicyStatement(actions=topic_actions, resources=[self.topic_arn(topic)])
        )


class MskTopicConsumer(Construct):
    """A Lambda function reading one topic of an :class:`MskCluster` in a consumer group.

    Attributes: ``function``, ``log_group``, ``event_source_mapping``, ``failure_queue``,
    ``encryption_key``, ``errors_alarm``, ``failure_alarm``, ``alarms``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: MskCluster,
        topic: str,
        consumer_group: str,
        code: lambda_.Code,
        handler: str,
        starting_position: str = "TRIM_HORIZON",
        batch_size: int = STREAM_BATCH_SIZE,
        max_batching_window: Duration | None = None,
        bisect_batch_on_error: bool = True,
        retry_attempts: int = STREAM_RETRY_ATTEMPTS,
        max_record_age: Duration | None = None,
        minimum_pollers: int = 1,
        maximum_pollers: int = 2,
        function_timeout: Duration | None = None,
        memory_size: int = MEMORY_SIZE_MB,
        environment: Mapping[str, str] | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
        log_retention: logs.RetentionDays = LOG_RETENTION,
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param cluster: the cluster. Required. :param topic: a topic of ``cluster.topics``.
        :param consumer_group: the mapping's consumer group id. Required.
        :param code: the consumer's code. :param handler: its entry point; it returns
            ``batchItemFailures`` with ``{"partition": "topic-p", "offset": n}`` identifiers.
        :param starting_position: TRIM_HORIZON or LATEST (a new group). Default: TRIM_HORIZON.
        :param batch_size: records per invocation, 1-10,000. Default: 100.
        :param max_batching_window: 0-300 s. Default: none.
        :param bisect_batch_on_error: Default: on. :param retry_attempts: 0-10,000 (-1 is
            refused: it would block a partition). Default: 3.
        :param max_record_age: 60 s-7 days. Default: 1 hour.
        :param minimum_pollers: provisioned event pollers, 1-200. Default: 1.
        :param maximum_pollers: 1-2,000, at least ``minimum_pollers``. Default: 2.
        :param function_timeout: Default: 30 s. :param memory_size: MB. Default: 256.
        :param environment: extra variables. :param layers: Lambda layers.
        :param log_retention: Default: one month. :param alarm_actions: of the alarms.
        :param removal_policy: of the log group, failure queue and key. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        age = max_record_age or STREAM_MAX_RECORD_AGE
        require(topic in cluster.topics, path, f"topic {topic!r} is not a topic of the cluster")
        require(bool(consumer_group), path, "consumer_group must be named")
        require(
            starting_position in STARTING_POSITIONS,
            path,
            f"starting_position must be one of {', '.join(STARTING_POSITIONS)}",
        )
        require(1 <= batch_size <= 10_000, path, f"batch_size must be 1-10,000 ({batch_size})")
        require(
            0 <= retry_attempts <= 10_000,
            path,
            f"retry_attempts must be 0-10,000 (got {retry_attempts}): unbounded retries "
            "block the partition",
        )
        age_s = seconds(age)
        require(age_s is None or 60 <= age_s <= 604_800, path, "max_record_age: 60 s-7 days")
        require(
            1 <= minimum_pollers <= maximum_pollers <= 2000,
            path,
            "need 1 <= minimum_pollers <= maximum_pollers <= 2,000",
        )
        self.encryption_key = new_key(
            self,
            "Key",
            description=f"Encrypts the failure queue, logs and environment of {path}",
            removal_policy=removal_policy,
        )
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
            "Invoked synchronously by its MSK event source mapping: a batch that keeps failing "
            "is bisected, retried a bounded number of times, then its offset range goes to the "
            "mapping's on-failure destination (the failure queue); a function DLQ only serves "
            "asynchronous invocations.",
        )
        role = self.function.role
        assert role is not None
        cluster._grant(
            self.function, topic, ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                resources=[cluster.group_arn(consumer_group)],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:DescribeClusterDynamicConfiguration"],
                resources=[cluster.cluster_arn],
            )
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
        self.failure_queue = dead_letter_queue(
            self, "FailureQueue", key=self.encryption_key, removal_policy=removal_policy
        )
        self.failure_queue.grant_send_messages(role)
        acknowledge_encrypted_send(self.function, "the KMS-encrypted failure queue")
        self.event_source_mapping = lambda_.CfnEventSourceMapping(
            self,
            "Mapping",
            function_name=self.function.function_name,
            event_source_arn=cluster.cluster_arn,
            topics=[topic],
            starting_position=starting_position,
            batch_size=batch_size,
            maximum_batching_window_in_seconds=(
                int(max_batching_window.to_seconds()) if max_batching_window else None
            ),
            amazon_managed_kafka_event_source_config=(
                lambda_.CfnEventSourceMapping.AmazonManagedKafkaEventSourceConfigProperty(
                    consumer_group_id=consumer_group
                )
            ),
            function_response_types=["ReportBatchItemFailures"],
            bisect_batch_on_function_error=bisect_batch_on_error,
            maximum_retry_attempts=retry_attempts,
            maximum_record_age_in_seconds=int(age_s) if age_s is not None else None,
            destination_config=lambda_.CfnEventSourceMapping.DestinationConfigProperty(
                on_failure=lambda_.CfnEventSourceMapping.OnFailureProperty(
                    destination=self.failure_queue.queue_arn
                )
            ),
            provisioned_poller_config=lambda_.CfnEventSourceMapping.ProvisionedPollerConfigProperty(
                minimum_pollers=minimum_pollers, maximum_pollers=maximum_pollers
            ),
        )
        # The topic must exist first, and the role must be able to read it at creation.
        self.event_source_mapping.node.add_dependency(cluster.topics[topic])
        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None
        self.event_source_mapping.node.add_dependency(policy)
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "Lambda's MSK mapping creates its network interfaces in the cluster's VPC with the "
            "function's role; EC2's Describe*/network-interface actions take no resource scope.",
        )
        checkov_skip(
            policy,
            "CKV_AWS_111",
            "Lambda's MSK mapping creates and deletes its network interfaces in the cluster's "
            "VPC with the function's role: the interfaces do not exist before Lambda creates "
            "them, so no ARN can name them at synth (AWS's AWSLambdaVPCAccessExecutionRole "
            "grants the same actions on '*'); every other statement names its resource.",
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
                f"{path}: invocations failed; failing records are bisected and retried, then "
                "their offset range goes to the failure queue."
            ),
        )
        self.failure_alarm = dead_letter_alarm(
            self,
            "FailureAlarm",
            queue=self.failure_queue,
            description=(
                f"{path}: records were given up on (offset ranges in the failure queue): read "
                "them back from the topic while it retains them, fix, replay."
            ),
        )
        self.alarms = [self.errors_alarm, self.failure_alarm]
        for action in alarm_actions:
            for alarm in self.alarms:
                alarm.add_alarm_action(action)
