"""Amazon MSK: the cluster is the sandbox's local Kafka-protocol broker (tansu, see
:mod:`conveyor.sandbox.brokers`), recorded in moto's Kafka (control plane only), whose
``GetBootstrapBrokers`` answers with the local broker (:func:`conveyor.sandbox.moto_patches.
serve_bootstrap_brokers`). ``AWS::MSK::Topic`` creates the topic with its partitions on the
local broker (replication factor 1 there: one node). Authentication (IAM), VPC and
encryption settings have no local effect.
"""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.brokers import KAFKA, KafkaServer
from conveyor.sandbox.model import DeployedResource
from conveyor.sandbox.moto_patches import serve_bootstrap_brokers
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import text, words


def local_kafka(ctx: ProviderContext) -> KafkaServer:
    brokers = ctx.state.brokers
    server = brokers.kafka if brokers is not None else None
    if server is None:
        missing = (brokers.missing.get(KAFKA) if brokers is not None else None) or (
            "no local Kafka broker was started for this deployment"
        )
        raise ctx.unsupported(None, f"needs the local Kafka broker: {missing}")
    return server


def _cluster(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    server = local_kafka(ctx)
    name = ctx.name(props.get("ClusterName"))
    kafka = ctx.client("kafka")
    if ctx.type == "AWS::MSK::ServerlessCluster":
        answer = kafka.create_cluster_v2(
            ClusterName=name,
            Serverless={
                "VpcConfigs": [
                    {
                        "SubnetIds": [text(s) for s in config.get("SubnetIds") or []],
                        "SecurityGroupIds": [text(s) for s in config.get("SecurityGroups") or []],
                    }
                    for config in props.get("VpcConfigs") or []
                ],
                "ClientAuthentication": props.get("ClientAuthentication") or {},
            },
        )
    else:
        answer = kafka.create_cluster_v2(
            ClusterName=name,
            Provisioned={
                "BrokerNodeGroupInfo": {
                    "ClientSubnets": [
                        text(s)
                        for s in (props.get("BrokerNodeGroupInfo") or {}).get("ClientSubnets", [])
                    ],
                    "InstanceType": text(
                        (props.get("BrokerNodeGroupInfo") or {}).get("InstanceType", "")
                    ),
                },
                "KafkaVersion": text(props.get("KafkaVersion", "")),
                "NumberOfBrokerNodes": int(props.get("NumberOfBrokerNodes", 1)),
            },
        )
    arn = str(answer["ClusterArn"])
    serve_bootstrap_brokers(arn, server.bootstrap_servers)
    ctx.state.kafka_clusters[arn] = server.bootstrap_servers
    return ctx.resource(arn, props, Arn=arn)


def _topic(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        NewTopic,
    )

    cluster = text(props["ClusterArn"])
    servers = ctx.state.kafka_clusters.get(cluster)
    if servers is None:
        raise ctx.unsupported("ClusterArn", f"{cluster} is not a cluster of this deployment")
    name = text(props["TopicName"])
    admin = AdminClient({"bootstrap.servers": servers})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=int(props["PartitionCount"]), replication_factor=1)],
        operation_timeout=10,
    )
    try:
        futures[name].result(timeout=15)
    except Exception as error:  # KafkaException: the broker outlives a deployment
        if "TOPIC_ALREADY_EXISTS" not in str(error) and "already exists" not in str(error):
            raise
        existing = admin.list_topics(name, timeout=10).topics[name].partitions
        if len(existing) != int(props["PartitionCount"]):
            raise ctx.unsupported(
                "PartitionCount",
                f"topic {name} already exists on the local broker with {len(existing)} partitions",
            ) from None
    arn = cluster.replace(":cluster/", ":topic/", 1) + f"/{name}"
    return ctx.resource(arn, props, TopicArn=arn)


_CLUSTER_PROPERTIES = frozenset(words("ClusterName ClientAuthentication VpcConfigs Tags"))
_PROVISIONED_PROPERTIES = frozenset(
    words(
        "ClusterName ClientAuthentication BrokerNodeGroupInfo KafkaVersion NumberOfBrokerNodes "
        "EncryptionInfo LoggingInfo EnhancedMonitoring OpenMonitoring Tags ConfigurationInfo"
    )
)

PROVIDERS = (
    ResourceProvider("AWS::MSK::ServerlessCluster", _cluster, _CLUSTER_PROPERTIES, name_limit=64),
    ResourceProvider("AWS::MSK::Cluster", _cluster, _PROVISIONED_PROPERTIES, name_limit=64),
    ResourceProvider(
        "AWS::MSK::Topic",
        _topic,
        frozenset(words("ClusterArn TopicName PartitionCount ReplicationFactor Configs")),
    ),
)
