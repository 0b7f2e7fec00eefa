"""The broker constructs (Amazon MQ for RabbitMQ, MSK) and the two tour stacks: the template
properties that make them private, authenticated, encrypted and safe to consume, and the
invalid combinations refused at synth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from conveyor.constructs.broker_network import BrokerNetwork
from conveyor.constructs.msk_cluster import MskCluster, MskTopicConsumer
from conveyor.constructs.rabbitmq_broker import RabbitMqBroker, RabbitMqQueueConsumer
from conveyor.lambdas.tours.tours import contract


@pytest.fixture(scope="module")
def rabbit(synthesized) -> tuple[Stack, Template]:
    stack = synthesized["stacks"]["Conveyor-test-ToursRabbitMQ"]
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def kafka(synthesized) -> tuple[Stack, Template]:
    stack = synthesized["stacks"]["Conveyor-test-ToursKafka"]
    return stack, Template.from_stack(stack)


def resources(template: Template, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = template.find_resources(kind)
    return found


# -- network -----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["rabbit", "kafka"])
def test_the_vpc_has_no_nat_and_reaches_aws_through_endpoints(which, request):
    _, template = request.getfixturevalue(which)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    services = [
        r["Properties"]["ServiceName"]
        for r in resources(template, "AWS::EC2::VPCEndpoint").values()
    ]
    rendered = str(services)
    for service in ("secretsmanager", "sts", "lambda", "dynamodb"):
        assert f".{service}" in rendered, service
    template.resource_count_is("AWS::EC2::FlowLog", 1)


# -- Amazon MQ -----------------------------------------------------------------------------------


def test_the_broker_is_private_encrypted_logged_and_upgrades_in_its_window(rabbit):
    _, template = rabbit
    template.has_resource_properties(
        "AWS::AmazonMQ::Broker",
        {
            "EngineType": "RABBITMQ",
            "EngineVersion": "3.13",
            "AutoMinorVersionUpgrade": True,
            "PubliclyAccessible": False,
            "DeploymentMode": "SINGLE_INSTANCE",
            "HostInstanceType": "mq.t3.micro",
            "EncryptionOptions": {"UseAwsOwnedKey": True},
            "Logs": {"General": True},
            "MaintenanceWindowStartTime": {
                "DayOfWeek": "SUNDAY",
                "TimeOfDay": "03:00",
                "TimeZone": "UTC",
            },
            "SubnetIds": Match.any_value(),
            "Users": [
                {
                    "Username": "conveyor",
                    "Password": {
                        "Fn::Join": [
                            "",
                            Match.array_with([Match.string_like_regexp("resolve:secretsmanager")]),
                        ]
                    },
                }
            ],
        },
    )


def test_the_topology_is_declared_at_deploy_with_a_dead_letter_exchange(rabbit):
    _, template = rabbit
    (definitions,) = resources(template, "Custom::RabbitMqDefinitions").values()
    document = definitions["Properties"]["Definitions"]
    exchanges = {e["name"]: e for e in document["exchanges"]}
    assert exchanges["tour_events"]["type"] == "topic"
    assert exchanges["tour_events"]["durable"] is True
    queues = {q["name"]: q for q in document["queues"]}
    assert queues["notification_queue"]["durable"] is True
    assert queues["notification_queue"]["arguments"] == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 3,
        "x-dead-letter-exchange": "tour_events.dlx",
    }
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]}
    assert bindings == {
        ("tour_events", "notification_queue", "tour.booked"),
        ("tour_events", "notification_queue", "tour.booked.*"),
        ("tour_events.dlx", "notification_queue.dlq", ""),
    }


def test_the_consumer_reads_the_queue_with_the_brokers_secret(rabbit):
    _, template = rabbit
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]},
            "Queues": ["notification_queue"],
            "BatchSize": 1,
            "SourceAccessConfigurations": [
                {"Type": "BASIC_AUTH", "URI": {"Ref": Match.string_like_regexp("AdminSecret")}},
                {"Type": "VIRTUAL_HOST", "URI": "/"},
            ],
        },
    )


def test_the_secret_is_on_a_customer_key_the_mapping_role_may_decrypt(rabbit):
    _, template = rabbit
    (secret,) = resources(template, "AWS::SecretsManager::Secret").values()
    key_id = secret["Properties"]["KmsKeyId"]["Fn::GetAtt"][0]
    statements = resources(template, "AWS::KMS::Key")[key_id]["Properties"]["KeyPolicy"][
        "Statement"
    ]
    via_secrets_manager = [
        st
        for st in statements
        if "kms:Decrypt" in st["Action"]
        and "kms:ViaService" in st.get("Condition", {}).get("StringEquals", {})
    ]
    principals = json.dumps([st["Principal"] for st in via_secrets_manager])
    # The consumer's role reads the BASIC_AUTH secret for the Amazon MQ mapping, the
    # definitions function (BrokerRole) for the custom resource.
    assert "ConsumerRole" in principals
    assert "BrokerRole" in principals


def test_the_broker_dead_letter_queue_is_alarmed(rabbit):
    _, template = rabbit
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/AmazonMQ",
            "MetricName": "MessageCount",
            "Dimensions": Match.array_with([{"Name": "Queue", "Value": "notification_queue.dlq"}]),
            "AlarmActions": Match.any_value(),
        },
    )


# -- MSK -----------------------------------------------------------------------------------------


def test_the_serverless_cluster_takes_iam_clients_only(kafka):
    _, template = kafka
    template.has_resource_properties(
        "AWS::MSK::ServerlessCluster",
        {
            "ClientAuthentication": {"Sasl": {"Iam": {"Enabled": True}}},
            "VpcConfigs": [{"SubnetIds": Match.any_value(), "SecurityGroups": Match.any_value()}],
        },
    )


def test_the_topic_exists_before_the_mapping(kafka):
    _, template = kafka
    topics = resources(template, "AWS::MSK::Topic")
    ((topic_id, topic),) = topics.items()
    assert topic["Properties"]["TopicName"] == contract.TOPIC
    assert topic["Properties"]["PartitionCount"] == 3
    (mapping,) = resources(template, "AWS::Lambda::EventSourceMapping").values()
    assert topic_id in mapping["DependsOn"]


def test_the_kafka_mapping_bounds_retries_bisects_and_keeps_failures(kafka):
    _, template = kafka
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "Topics": ["tour_events"],
            "StartingPosition": "TRIM_HORIZON",
            "AmazonManagedKafkaEventSourceConfig": {
                "ConsumerGroupId": "notification_service_group"
            },
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 3,
            "MaximumRecordAgeInSeconds": 3600,
            "DestinationConfig": {
                "OnFailure": {"Destination": {"Fn::GetAtt": [Match.any_value(), "Arn"]}}
            },
            "ProvisionedPollerConfig": {"MinimumPollers": 1, "MaximumPollers": 2},
        },
    )


def test_the_producer_may_write_idempotently_to_its_topic_only(kafka):
    _stack, template = kafka
    statements = [
        s
        for policy in resources(template, "AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"kafka-cluster:WriteDataIdempotently", "kafka-cluster:WriteData"} <= actions
    assert {"kafka-cluster:ReadData", "kafka-cluster:AlterGroup"} <= actions
    assert "kafka-cluster:*" not in actions


# -- invalid combinations ------------------------------------------------------------------------


@pytest.fixture
def stack(make_app) -> Stack:
    return Stack(make_app(), "Unit")


@pytest.fixture
def network(stack) -> BrokerNetwork:
    return BrokerNetwork(stack, "Network")


def code() -> lambda_.Code:
    return lambda_.Code.from_inline("def handler(event, context):\n    return None\n")


def test_a_cluster_broker_on_a_t3_instance_is_refused(stack, network):
    with pytest.raises(ValueError, match="Broker: a CLUSTER_MULTI_AZ broker needs an m5"):
        RabbitMqBroker(stack, "Broker", vpc=network.vpc, deployment_mode="CLUSTER_MULTI_AZ")


def test_definitions_without_their_handler_are_refused(stack, network):
    with pytest.raises(ValueError, match="definitions need definitions_code"):
        RabbitMqBroker(stack, "Broker", vpc=network.vpc, definitions={"queues": []})


def test_a_rabbitmq_batch_above_10000_is_refused(stack, network):
    broker = RabbitMqBroker(stack, "Broker", vpc=network.vpc)
    with pytest.raises(ValueError, match="Consumer: batch_size must be 1-10,000"):
        RabbitMqQueueConsumer(
            stack,
            "Consumer",
            broker=broker,
            queue="q",
            code=code(),
            handler="index.handler",
            batch_size=10_001,
        )


def test_unbounded_kafka_retries_are_refused(stack, network):
    cluster = MskCluster(stack, "Cluster", vpc=network.vpc, topics={"t": 3})
    with pytest.raises(ValueError, match=r"retry_attempts must be 0-10,000 .*block the partition"):
        MskTopicConsumer(
            stack,
            "Consumer",
            cluster=cluster,
            topic="t",
            consumer_group="g",
            code=code(),
            handler="index.handler",
            retry_attempts=-1,
        )


def test_a_consumer_of_a_topic_the_cluster_lacks_is_refused(stack, network):
    cluster = MskCluster(stack, "Cluster", vpc=network.vpc, topics={"t": 3})
    with pytest.raises(ValueError, match="topic 'other' is not a topic of the cluster"):
        MskTopicConsumer(
            stack,
            "Consumer",
            cluster=cluster,
            topic="other",
            consumer_group="g",
            code=code(),
            handler="index.handler",
        )


def test_a_provisioned_cluster_has_one_tls_broker_per_subnet_and_iam(stack, network):
    MskCluster(stack, "Cluster", vpc=network.vpc, topics={"t": 3}, provisioned=True)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::MSK::Cluster",
        {
            "NumberOfBrokerNodes": 2,
            "ClientAuthentication": {"Sasl": {"Iam": {"Enabled": True}}},
            "EncryptionInfo": {"EncryptionInTransit": {"ClientBroker": "TLS", "InCluster": True}},
        },
    )
    template.has_resource_properties("AWS::MSK::Topic", {"ReplicationFactor": 2})
