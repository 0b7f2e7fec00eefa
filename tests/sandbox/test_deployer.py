"""The sandbox deployer: the real synthesized app deployed into moto, and small templates."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from moto.server import ThreadedMotoServer

from conveyor.sandbox.assembly import AssemblyError, read_assembly
from conveyor.sandbox.brokers import brokers_needed
from conveyor.sandbox.deployer import (
    UnsupportedResource,
    deploy,
    internal_queue_name,
    physical_name,
    report,
    resource_order,
)
from conveyor.sandbox.intrinsics import IntrinsicError
from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedStack, Deployment
from tests.conftest import require_broker
from tests.support.aws import fake_aws_env

ENV = "test"  # tests/conftest.py's sandbox_settings


def stack_name(topology: str) -> str:
    return f"Conveyor-{ENV}-{topology}"


def client(service: str, endpoint_url: str | None = None) -> Any:
    return boto3.session.Session().client(service, region_name=REGION, endpoint_url=endpoint_url)


def logical_ids(stack: DeployedStack, resource_type: str) -> list[str]:
    return [
        lid
        for lid, resource in stack.template["Resources"].items()
        if resource["Type"] == resource_type
    ]


def find(stack: DeployedStack, resource_type: str, prefix: str) -> str:
    """The one logical id of ``resource_type`` starting with ``prefix``."""
    found = [lid for lid in logical_ids(stack, resource_type) if lid.startswith(prefix)]
    assert len(found) == 1, (prefix, found)
    return found[0]


def drain(sqs: Any, url: str, *, attempts: int = 3) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(attempts):
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)
    return messages


@pytest.fixture(scope="session")
def assembly_dir(synthesized: dict[str, Any]) -> Path:
    """The whole app, synthesized once (bundling skipped) by tests/conftest.py."""
    return Path(synthesized["outdir"])


# -- the real app, deployed in-process ------------------------------------------------------


@pytest.fixture(scope="class")
def deployment(assembly_dir: Path, local_brokers: Any) -> Iterator[Deployment]:
    templates = {s.name: s.template for s in read_assembly(assembly_dir).stacks}
    deployable = [
        n for n, t in templates.items() if not brokers_needed(t) & set(local_brokers.missing)
    ]
    with pytest.MonkeyPatch.context() as patch:
        fake_aws_env(patch)
        with moto.mock_aws():
            started = time.perf_counter()
            deployment = deploy(assembly_dir, stack_names=deployable, brokers=local_brokers)
            elapsed = time.perf_counter() - started
            print(f"\ndeployed {len(deployment.stacks)} stacks in {elapsed:.2f} s")
            yield deployment


class TestDeployedApp:
    """Every stack of the app deployed once into ``mock_aws`` (shared by the class)."""

    def test_every_stack_is_deployed_in_dependency_order(
        self, deployment: Deployment, assembly_dir: Path, local_brokers: Any
    ) -> None:
        require_broker(local_brokers, "rabbitmq", "kafka")
        names = [stack.name for stack in read_assembly(assembly_dir).stacks]
        assert list(deployment.stacks) == names
        assert set(names) == {
            stack_name(t)
            for t in (
                "ImagePipeline",
                "OrderEvents",
                "PaymentsRouting",
                "OrderPipeline",
                "Telemetry",
                "OrderFulfillment",
                "Accounts",
                "OrderChoreography",
                "ToursRabbitMQ",
                "ToursKafka",
            )
        }
        assert deployment.account_id == ACCOUNT_ID
        assert deployment.region == REGION

    def test_every_resource_is_created_or_skipped_with_a_reason(
        self, deployment: Deployment
    ) -> None:
        for stack in deployment.stacks.values():
            for lid in stack.template["Resources"]:
                assert lid in stack.resources, (stack.name, lid)
                resource = stack.resources[lid]
                assert resource.physical_id, (stack.name, lid)
            for key, reason in stack.skipped.items():
                assert reason.strip(), (stack.name, key)
            created = {r.type for lid, r in stack.resources.items() if lid not in stack.skipped}
            assert "AWS::IAM::Role" not in created
            assert created & {
                "AWS::SQS::Queue",
                "AWS::Kinesis::Stream",
                "AWS::AmazonMQ::Broker",
                "AWS::MSK::ServerlessCluster",
            }, stack.name

    def test_skip_reasons(self, deployment: Deployment) -> None:
        events = deployment.stacks[stack_name("OrderEvents")]
        by_type: dict[str, set[str]] = {}
        for lid, reason in events.skipped.items():
            by_type.setdefault(events.resources[lid].type, set()).add(reason)
        assert by_type["AWS::IAM::Role"] == {"IAM is not enforced by moto"}
        assert by_type["AWS::SQS::QueuePolicy"] == {"resource policies are not enforced"}
        assert "moto's alarms never fire" in next(iter(by_type["AWS::CloudWatch::Alarm"]))
        assert "ARM64 wheels" in next(iter(by_type["AWS::Lambda::LayerVersion"]))
        email = find(events, "AWS::SNS::Subscription", "OrderEventsTopicordersexamplecom")
        assert "e-mail" in events.skipped[email]
        sms = find(events, "AWS::SNS::Subscription", "AlarmsTopic33612345678")
        assert "SMS" in events.skipped[sms]
        pipeline = deployment.stacks[stack_name("OrderPipeline")]
        api = find(pipeline, "AWS::ApiGateway::RestApi", "IngestApi")
        assert "serves the REST APIs" in pipeline.skipped[api]
        images = deployment.stacks[stack_name("ImagePipeline")]
        provider = find(images, "AWS::Lambda::Function", "BucketNotificationsHandler")
        assert "Custom::S3BucketNotifications" in images.skipped[provider]
        assert provider not in images.functions
        auto_delete = find(images, "AWS::Lambda::Function", "CustomS3AutoDeleteObjects")
        assert "Custom::S3AutoDeleteObjects" in images.skipped[auto_delete]

    def test_skipped_resources_get_synthetic_references(self, deployment: Deployment) -> None:
        events = deployment.stacks[stack_name("OrderEvents")]
        role = events.resources[find(events, "AWS::IAM::Role", "OrderEventsPaymentRole")]
        assert role.attributes["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{role.physical_id}"
        pipeline = deployment.stacks[stack_name("OrderPipeline")]
        api = pipeline.resources[find(pipeline, "AWS::ApiGateway::RestApi", "IngestApi")]
        assert pipeline.outputs["ApiUrl"] == (
            f"https://{api.physical_id}.execute-api.{REGION}.amazonaws.com/v1/orders"
        )

    def test_queues_exist_with_their_redrive_policies(self, deployment: Deployment) -> None:
        sqs = client("sqs")
        checked = 0
        for stack in deployment.stacks.values():
            for lid in logical_ids(stack, "AWS::SQS::Queue"):
                resource = stack.resources[lid]
                props = stack.template["Resources"][lid]["Properties"]
                attributes = sqs.get_queue_attributes(
                    QueueUrl=resource.physical_id, AttributeNames=["All"]
                )["Attributes"]
                assert attributes["QueueArn"] == resource.attributes["Arn"]
                assert resource.attributes["QueueUrl"] == resource.physical_id
                assert attributes["MessageRetentionPeriod"] == str(props["MessageRetentionPeriod"])
                if "VisibilityTimeout" in props:
                    assert attributes["VisibilityTimeout"] == str(props["VisibilityTimeout"])
                if "RedrivePolicy" in props:
                    redrive = json.loads(attributes["RedrivePolicy"])
                    dlq = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                    assert redrive["deadLetterTargetArn"] == stack.resources[dlq].attributes["Arn"]
                    assert (
                        int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"]
                    )
                    checked += 1
                if props.get("FifoQueue"):
                    assert attributes["FifoQueue"] == "true"
                    assert resource.attributes["QueueName"].endswith(".fifo")
                assert attributes["KmsMasterKeyId"].startswith(f"arn:aws:kms:{REGION}:")
        assert checked >= 8

    def test_physical_names_are_deterministic(self, deployment: Deployment) -> None:
        images = deployment.stacks[stack_name("ImagePipeline")]
        queue = images.resources[find(images, "AWS::SQS::Queue", "ResizeQueue")]
        assert queue.attributes["QueueName"] == f"{images.name}-{queue.logical_id}"
        bucket = images.resources[find(images, "AWS::S3::Bucket", "Processed")]
        assert bucket.physical_id == f"{images.name}-{bucket.logical_id}".lower()
        payments = deployment.stacks[stack_name("PaymentsRouting")]
        bus = payments.resources[find(payments, "AWS::Events::EventBus", "PaymentsBus")]
        assert (
            bus.physical_id == payments.template["Resources"][bus.logical_id]["Properties"]["Name"]
        )
        archive = payments.resources[find(payments, "AWS::Events::Archive", "PaymentsArchive")]
        assert len(archive.physical_id) <= 48
        assert payments.outputs["ArchiveName"] == archive.physical_id

    def test_sns_subscriptions_have_their_filter_policies(self, deployment: Deployment) -> None:
        sns = client("sns")
        events = deployment.stacks[stack_name("OrderEvents")]
        checked = 0
        for lid in logical_ids(events, "AWS::SNS::Subscription"):
            props = events.template["Resources"][lid]["Properties"]
            if props["Protocol"] not in ("sqs", "lambda"):
                continue
            arn = events.resources[lid].physical_id
            attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
            assert attributes["Protocol"] == "sqs"
            if "FilterPolicy" in props:
                assert json.loads(attributes["FilterPolicy"]) == props["FilterPolicy"]
                assert attributes["FilterPolicyScope"] == props["FilterPolicyScope"]
                checked += 1
            raw = props.get("RawMessageDelivery", False) and props["Protocol"] == "sqs"
            assert attributes["RawMessageDelivery"] == str(raw).lower()
            if "RedrivePolicy" in props:
                assert "deadLetterTargetArn" in json.loads(attributes["RedrivePolicy"])
        assert checked >= 7

    def test_order_placed_reaches_the_payment_queue_not_the_invoice_function(
        self, deployment: Deployment
    ) -> None:
        events = deployment.stacks[stack_name("OrderEvents")]
        sns, sqs = client("sns"), client("sqs")
        payment_url = events.outputs["PaymentQueueUrl"]
        invoice = next(r for r in events.routes if r.function_logical_id.startswith("Invoice"))
        assert invoice.kind == "sns"
        order = {"orderId": "o-1", "customerId": "c-1", "order": {"total": 42}}
        sns.publish(
            TopicArn=events.outputs["TopicArn"],
            Message=json.dumps(order),
            MessageAttributes={"eventType": {"DataType": "String", "StringValue": "OrderPlaced"}},
        )
        received = drain(sqs, payment_url)
        assert len(received) == 1
        envelope = json.loads(received[0]["Body"])
        assert envelope["Type"] == "Notification"
        assert json.loads(envelope["Message"]) == order
        assert envelope["MessageAttributes"]["eventType"]["Value"] == "OrderPlaced"
        assert drain(sqs, invoice.queue_url) == []

        sns.publish(
            TopicArn=events.outputs["TopicArn"],
            Message=json.dumps({"invoiceId": "i-1"}),
            MessageAttributes={"eventType": {"DataType": "String", "StringValue": "invoice"}},
        )
        delivered = drain(sqs, invoice.queue_url)
        assert len(delivered) == 1
        envelope = json.loads(delivered[0]["Body"])
        assert envelope["Type"] == "Notification"
        assert json.loads(envelope["Message"]) == {"invoiceId": "i-1"}
        assert drain(sqs, payment_url) == []

    def test_s3_upload_lands_an_s3_event_in_the_resize_queue(self, deployment: Deployment) -> None:
        images = deployment.stacks[stack_name("ImagePipeline")]
        s3, sqs = client("s3"), client("sqs")
        bucket = images.outputs["UploadBucketName"]
        queue_url = images.outputs["QueueUrl"]
        s3.put_object(Bucket=bucket, Key="photo.jpg", Body=b"\xff\xd8\xff")
        s3.put_object(Bucket=bucket, Key="notes.txt", Body=b"ignored by the suffix filters")
        bodies = [json.loads(m["Body"]) for m in drain(sqs, queue_url)]
        assert bodies[0]["Event"] == "s3:TestEvent"
        records = [record for body in bodies[1:] for record in body["Records"]]
        assert [r["s3"]["object"]["key"] for r in records] == ["photo.jpg"]
        assert records[0]["eventName"].startswith("ObjectCreated:")
        assert records[0]["s3"]["bucket"]["name"] == bucket

    def test_high_value_facture_reaches_the_review_function_and_the_audit_queue(
        self, deployment: Deployment
    ) -> None:
        payments = deployment.stacks[stack_name("PaymentsRouting")]
        events, sqs = client("events"), client("sqs")
        review = next(r for r in payments.routes if r.kind == "events")
        assert review.function_logical_id.startswith("HighValueReview")
        audit_url = payments.outputs["AuditQueueUrl"]

        def put(amount: int) -> None:
            response = events.put_events(
                Entries=[
                    {
                        "EventBusName": payments.outputs["EventBusName"],
                        "Source": "app.paiement",
                        "DetailType": "facture",
                        "Detail": json.dumps({"factureId": f"f-{amount}", "montant": amount}),
                    }
                ]
            )
            assert response["FailedEntryCount"] == 0

        put(6000)
        reviewed = [json.loads(m["Body"]) for m in drain(sqs, review.queue_url)]
        assert [e["detail"]["montant"] for e in reviewed] == [6000]
        assert reviewed[0]["source"] == "app.paiement"
        assert reviewed[0]["detail-type"] == "facture"
        audited = [json.loads(m["Body"]) for m in drain(sqs, audit_url)]
        assert [e["detail"]["montant"] for e in audited] == [6000]

        put(100)
        assert drain(sqs, review.queue_url) == []
        assert [json.loads(m["Body"])["detail"]["montant"] for m in drain(sqs, audit_url)] == [100]

    def test_functions_have_handler_code_and_resolved_environment(
        self, deployment: Deployment
    ) -> None:
        count = 0
        for stack in deployment.stacks.values():
            for lid, spec in stack.functions.items():
                props = stack.template["Resources"][lid]["Properties"]
                assert spec.logical_id == lid
                assert spec.handler == props["Handler"]
                assert spec.runtime == props["Runtime"] == "python3.14"
                assert spec.timeout_s == props["Timeout"]
                assert spec.name == stack.resources[lid].physical_id
                assert spec.arn == (f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.name}")
                assert spec.code_dir.is_dir()
                package = spec.handler.split(".")[0]
                assert (spec.code_dir / package).is_dir(), (spec.code_dir, package)
                assert set(spec.environment) == set(props["Environment"]["Variables"])
                for value in spec.environment.values():
                    assert isinstance(value, str)
                    assert "Ref" not in value
                    assert "Fn::" not in value
                count += 1
        assert count == 40  # 43 functions minus 3 custom resource providers

        images = deployment.stacks[stack_name("ImagePipeline")]
        resize = images.functions[find(images, "AWS::Lambda::Function", "ResizeFunction")]
        assert resize.environment["DESTINATION_BUCKET"] == images.outputs["ProcessedBucketName"]
        assert resize.environment["DEAD_LETTER_QUEUE_URL"] == images.outputs["DeadLetterQueueUrl"]
        assert resize.environment["THUMBNAIL_SIZES"] == "64,256"
        remediation = images.functions[find(images, "AWS::Lambda::Function", "RemediationFunction")]
        rules = json.loads(
            client("ssm").get_parameter(
                Name=remediation.environment["REMEDIATION_RULES_PARAMETER"]
            )["Parameter"]["Value"]
        )
        assert rules  # alarm names (synthetic) -> actions, with real queue ARNs
        assert all(
            rule["dead_letter_queue_arn"].startswith(f"arn:aws:sqs:{REGION}:")
            for rule in rules.values()
        )

    def test_event_invoke_configs_fill_the_function_specs(self, deployment: Deployment) -> None:
        events = deployment.stacks[stack_name("OrderEvents")]
        invoice = events.functions[find(events, "AWS::Lambda::Function", "InvoiceFunction")]
        failure = events.resources[find(events, "AWS::SQS::Queue", "InvoiceFailureQueue")]
        assert invoice.max_retry_attempts == 2
        assert invoice.on_failure_queue_url == failure.physical_id
        payment = events.functions[find(events, "AWS::Lambda::Function", "OrderEventsPayment")]
        assert payment.max_retry_attempts is None
        assert payment.on_failure_queue_url is None

    def test_routes_of_the_order_events_mappings(self, deployment: Deployment) -> None:
        events = deployment.stacks[stack_name("OrderEvents")]
        sqs_routes = [r for r in events.routes if r.kind == "sqs"]
        assert len(sqs_routes) == 4
        assert {r.source for r in sqs_routes} == set(
            logical_ids(events, "AWS::Lambda::EventSourceMapping")
        )
        queue_urls = {
            events.outputs[f"{name}QueueUrl"]
            for name in ("Payment", "Inventory", "Shipping", "Notification")
        }
        assert {r.queue_url for r in sqs_routes} == queue_urls
        for route in sqs_routes:
            assert route.batch_size == 10
            assert route.batching_window_s == 0
            assert route.report_batch_item_failures
            assert not route.fifo
            assert route.function_logical_id in events.functions
        sns_routes = {
            r.function_logical_id.split("Function")[0]: r for r in events.routes if r.kind == "sns"
        }
        assert set(sns_routes) == {"Invoice", "User", "Remediation"}
        for route in sns_routes.values():
            assert route.batch_size == 1
            assert route.queue_url.rsplit("/", 1)[-1] == internal_queue_name(
                events.name, route.source
            )
        pipeline = deployment.stacks[stack_name("OrderPipeline")]
        (fifo,) = [r for r in pipeline.routes if r.kind == "sqs"]
        assert fifo.fifo
        assert fifo.queue_url == pipeline.outputs["QueueUrl"]

    def test_tables_parameters_keys_and_log_groups(self, deployment: Deployment) -> None:
        dynamodb, kms, logs = client("dynamodb"), client("kms"), client("logs")
        pipeline = deployment.stacks[stack_name("OrderPipeline")]
        table = dynamodb.describe_table(TableName=pipeline.outputs["OrdersTableName"])["Table"]
        assert table["KeySchema"] == [{"AttributeName": "orderId", "KeyType": "HASH"}]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        events = deployment.stacks[stack_name("OrderEvents")]
        idempotency = events.resources[find(events, "AWS::DynamoDB::GlobalTable", "Idempotency")]
        ttl = dynamodb.describe_time_to_live(TableName=idempotency.physical_id)
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "expiration"
        assert idempotency.attributes["Arn"] == table["TableArn"].replace(
            pipeline.outputs["OrdersTableName"], idempotency.physical_id
        )
        for lid in logical_ids(events, "AWS::KMS::Key"):
            key = events.resources[lid]
            metadata = kms.describe_key(KeyId=key.physical_id)["KeyMetadata"]
            assert metadata["Arn"] == key.attributes["Arn"]
            assert key.attributes["KeyId"] == key.physical_id
        for lid in logical_ids(events, "AWS::Logs::LogGroup"):
            name = events.resources[lid].physical_id
            (group,) = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            assert group["retentionInDays"] == 30

    def test_outputs_are_resolved(self, deployment: Deployment) -> None:
        for stack in deployment.stacks.values():
            assert set(stack.outputs) == set(stack.template["Outputs"])
            for value in stack.outputs.values():
                assert isinstance(value, str)
                assert "{" not in value

    def test_report_lists_created_and_skipped(self, deployment: Deployment) -> None:
        text = report(deployment)
        for stack in deployment.stacks:
            assert stack in text
        assert "AWS::SQS::Queue" in text
        assert "IAM is not enforced by moto" in text
        assert "route    sns" in text
        assert "e-mail subscriptions are not delivered" in text


# -- a moto server -------------------------------------------------------------------------


def test_deploy_one_stack_to_a_moto_server(
    assembly_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_aws_env(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        deployment = deploy(
            assembly_dir, endpoint_url=endpoint, stack_names=[stack_name("OrderEvents")]
        )
        assert list(deployment.stacks) == [stack_name("OrderEvents")]
        events = deployment.stacks[stack_name("OrderEvents")]
        payment_url = events.outputs["PaymentQueueUrl"]
        assert payment_url.startswith(endpoint)
        sns, sqs = client("sns", endpoint), client("sqs", endpoint)
        sns.publish(
            TopicArn=events.outputs["TopicArn"],
            Message=json.dumps({"orderId": "o-2"}),
            MessageAttributes={"eventType": {"DataType": "String", "StringValue": "OrderPlaced"}},
        )
        (message,) = drain(sqs, payment_url)
        assert json.loads(json.loads(message["Body"])["Message"]) == {"orderId": "o-2"}
    finally:
        server.stop()


# -- small templates -----------------------------------------------------------------------


def write_assembly(
    root: Path, templates: dict[str, dict[str, Any]], *, assets: dict[str, str] | None = None
) -> Path:
    """A minimal cloud assembly; ``assets`` maps an asset hash to a package to stage."""
    artifacts: dict[str, Any] = {}
    for name, template in templates.items():
        dependencies = []
        if assets:
            files = {}
            for asset_hash, package in assets.items():
                folder = root / f"asset.{asset_hash}" / package
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "__init__.py").write_text("")
                (folder / "handler.py").write_text("def handler(event, context):\n    return 1\n")
                files[asset_hash] = {
                    "source": {"path": f"asset.{asset_hash}", "packaging": "zip"},
                    "destinations": {"d": {"bucketName": "b", "objectKey": f"{asset_hash}.zip"}},
                }
            (root / f"{name}.assets.json").write_text(json.dumps({"files": files}))
            artifacts[f"{name}.assets"] = {
                "type": "cdk:asset-manifest",
                "properties": {"file": f"{name}.assets.json"},
            }
            dependencies.append(f"{name}.assets")
        (root / f"{name}.template.json").write_text(json.dumps(template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "properties": {"templateFile": f"{name}.template.json"},
            "dependencies": dependencies,
            "displayName": name,
        }
    (root / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return root


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        yield


QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 60}}
FUNCTION = {
    "Type": "AWS::Lambda::Function",
    "Properties": {
        "Code": {"S3Bucket": {"Fn::Sub": "cdk-assets-${AWS::AccountId}"}, "S3Key": "abc123.zip"},
        "Handler": "app.handler.handler",
        "Runtime": "python3.14",
        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
        "Environment": {
            "Variables": {
                "QUEUE_URL": {"Ref": "Queue"},
                "STAGE": {"Fn::If": ["IsProd", "prod", "dev"]},
                "OPTIONAL": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
            }
        },
    },
}
ROLE = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}


def test_unsupported_type_raises_before_anything_is_created(aws: None, tmp_path: Path) -> None:
    template = {
        "Resources": {
            "Queue": QUEUE,
            "Server": {"Type": "AWS::EC2::Instance", "Properties": {"ImageId": "ami-1"}},
        }
    }
    root = write_assembly(tmp_path, {"Unit": template})
    with pytest.raises(UnsupportedResource) as error:
        deploy(root)
    assert error.value.stack == "Unit"
    assert error.value.logical_id == "Server"
    assert error.value.resource_type == "AWS::EC2::Instance"
    assert "Unit/Server" in str(error.value)
    assert "AWS::EC2::Instance" in str(error.value)
    assert client("sqs").list_queues().get("QueueUrls", []) == []


@pytest.mark.parametrize(
    ("resource", "prop"),
    [
        ({"Type": "AWS::SQS::Queue", "Properties": {"Colour": "blue"}}, "Colour"),
        (
            {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q",
                    "FunctionName": "f",
                    "FilterCriteria": {"Filters": [{"Pattern": "{}"}]},
                },
            },
            "FilterCriteria",
        ),
        (
            {
                "Type": "AWS::Events::Rule",
                "Properties": {"Targets": [{"Id": "T", "Arn": "x", "EcsParameters": {}}]},
            },
            "Targets[0].EcsParameters",
        ),
        (
            {
                "Type": "Custom::S3BucketNotifications",
                "Properties": {
                    "BucketName": "b",
                    "NotificationConfiguration": {
                        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": "x"}]
                    },
                },
            },
            "NotificationConfiguration.LambdaFunctionConfigurations",
        ),
        (
            {
                "Type": "AWS::Lambda::EventInvokeConfig",
                "Properties": {
                    "FunctionName": "f",
                    "Qualifier": "$LATEST",
                    "DestinationConfig": {"OnSuccess": {"Destination": "arn"}},
                },
            },
            "DestinationConfig.OnSuccess",
        ),
        (
            {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {"ZipFile": "x"}, "Handler": "i.h", "Runtime": "py"},
            },
            "Code.ZipFile",
        ),
    ],
)
def test_unsupported_property_raises(
    aws: None, tmp_path: Path, resource: dict[str, Any], prop: str
) -> None:
    root = write_assembly(tmp_path, {"Unit": {"Resources": {"Queue": QUEUE, "Thing": resource}}})
    with pytest.raises(UnsupportedResource) as error:
        deploy(root)
    assert error.value.logical_id == "Thing"
    assert error.value.property == prop
    assert f"property {prop} of {resource['Type']}" in str(error.value)
    assert client("sqs").list_queues().get("QueueUrls", []) == []


def test_unknown_intrinsic_names_resource_and_path(aws: None, tmp_path: Path) -> None:
    template = {
        "Resources": {
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"DelaySeconds": {"Fn::Length": [1, 2]}},
            }
        }
    }
    with pytest.raises(IntrinsicError, match=r"Queue\.Properties\.DelaySeconds\.Fn::Length"):
        deploy(write_assembly(tmp_path, {"Unit": template}))


def test_small_stack_with_conditions_function_and_targets(aws: None, tmp_path: Path) -> None:
    template = {
        "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
        "Resources": {
            "Role": ROLE,
            "Queue": QUEUE,
            "ProdOnly": {"Type": "AWS::SQS::Queue", "Condition": "IsProd"},
            "Function": FUNCTION,
            "Fifo": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"FifoQueue": True, "ContentBasedDeduplication": True},
            },
            "Named": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "explicit-name"}},
            "Topic": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"FifoTopic": True, "ContentBasedDeduplication": True},
            },
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "unit-bus"}},
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventBusName": {"Ref": "Bus"},
                    "EventPattern": {"source": ["unit"]},
                    "State": "ENABLED",
                    "Targets": [
                        {
                            "Id": "ToFifo",
                            "Arn": {"Fn::GetAtt": ["Fifo", "Arn"]},
                            "SqsParameters": {"MessageGroupId": "g1"},
                        },
                        {"Id": "ToFunction", "Arn": {"Fn::GetAtt": ["Function", "Arn"]}},
                        {
                            "Id": "ToApi",
                            "Arn": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:api-destination/x/y",
                        },
                        {"Id": "ToTopic", "Arn": {"Ref": "Topic"}},
                    ],
                },
            },
            "Secret": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {
                    "GenerateSecretString": {
                        "SecretStringTemplate": '{"user": "u"}',
                        "GenerateStringKey": "password",
                        "PasswordLength": 16,
                        "ExcludePunctuation": True,
                    }
                },
            },
        },
        "Outputs": {
            "Stage": {"Value": {"Fn::Sub": "${Stage}-${AWS::StackName}"}},
            "ProdOnly": {"Condition": "IsProd", "Value": {"Ref": "ProdOnly"}},
        },
    }
    root = write_assembly(tmp_path, {"Unit": template}, assets={"abc123": "app"})
    stack = deploy(root).stacks["Unit"]

    assert stack.skipped["ProdOnly"] == "condition IsProd is false"
    assert "ProdOnly" not in stack.resources
    assert stack.outputs == {"Stage": "dev-Unit"}
    assert stack.skipped["Role"] == "IAM is not enforced by moto"

    function = stack.functions["Function"]
    assert function.name == "Unit-Function"
    assert function.code_dir == (tmp_path / "asset.abc123").resolve()
    assert function.environment == {
        "QUEUE_URL": stack.resources["Queue"].physical_id,
        "STAGE": "dev",
    }
    assert function.timeout_s == 3

    assert stack.resources["Fifo"].attributes["QueueName"] == "Unit-Fifo.fifo"
    assert stack.resources["Named"].attributes["QueueName"] == "explicit-name"
    assert stack.resources["Topic"].attributes["TopicName"] == "Unit-Topic.fifo"
    assert stack.resources["Rule"].physical_id.startswith("unit-bus|")
    assert (
        "ToApi" in stack.skipped["Rule/ToApi"] or "API destination" in stack.skipped["Rule/ToApi"]
    )
    assert "SNS" in stack.skipped["Rule/ToTopic"]

    (route,) = stack.routes
    assert route.kind == "events"
    assert route.function_logical_id == "Function"
    assert route.queue_url.endswith(internal_queue_name("Unit", "Rule", "ToFunction"))

    events, sqs = client("events"), client("sqs")
    targets = events.list_targets_by_rule(
        Rule=stack.resources["Rule"].physical_id.split("|")[1], EventBusName="unit-bus"
    )["Targets"]
    assert {t["Id"] for t in targets} == {"ToFifo", "ToFunction"}
    events.put_events(
        Entries=[{"EventBusName": "unit-bus", "Source": "unit", "DetailType": "t", "Detail": "{}"}]
    )
    assert len(drain(sqs, route.queue_url)) == 1
    (fifo_message,) = sqs.receive_message(
        QueueUrl=stack.resources["Fifo"].physical_id, AttributeNames=["MessageGroupId"]
    )["Messages"]
    assert fifo_message["Attributes"]["MessageGroupId"] == "g1"

    secret = json.loads(
        client("secretsmanager").get_secret_value(SecretId=stack.resources["Secret"].physical_id)[
            "SecretString"
        ]
    )
    assert secret["user"] == "u"
    assert len(secret["password"]) == 16


def test_resource_order_follows_references_and_depends_on() -> None:
    template = {
        "Resources": {
            "C": {"Type": "T", "Properties": {"X": {"Fn::Sub": "${B.Arn}"}}},
            "B": {"Type": "T", "DependsOn": "A"},
            "A": {"Type": "T", "Properties": {"Y": {"Ref": "AWS::Region"}}},
            "D": {"Type": "T"},
        }
    }
    assert resource_order(template) == ["A", "B", "C", "D"]
    template["Resources"]["A"]["DependsOn"] = ["C"]
    with pytest.raises(ValueError, match="dependency cycle"):
        resource_order(template)


def test_physical_names_are_truncated_deterministically() -> None:
    assert physical_name("Stack", "Queue", limit=80) == "Stack-Queue"
    long = physical_name("Conveyor-sandbox-PaymentsRouting", "PaymentsArchiveFC2D7AF4", limit=48)
    assert len(long) == 48
    assert long == physical_name(
        "Conveyor-sandbox-PaymentsRouting", "PaymentsArchiveFC2D7AF4", limit=48
    )
    fifo = physical_name("S" * 70, "QueueABCDEF12", limit=80, suffix=".fifo")
    assert len(fifo) == 80
    assert fifo.endswith(".fifo")
    assert physical_name("Stack", "Bucket", limit=63, lowercase=True) == "stack-bucket"
    assert internal_queue_name("Stack", "Sub").startswith("sbx-Stack-Sub")


def test_missing_assembly_and_unknown_stack(aws: None, tmp_path: Path) -> None:
    with pytest.raises(AssemblyError, match="make synth"):
        deploy(tmp_path)
    root = write_assembly(tmp_path, {"Unit": {"Resources": {"Queue": QUEUE}}})
    with pytest.raises(AssemblyError, match="no stack 'Other'"):
        deploy(root, stack_names=["Other"])


def test_reserved_and_maximum_concurrency_reach_the_runtime(aws: None, tmp_path: Path) -> None:
    function = {
        "Type": "AWS::Lambda::Function",
        "Properties": {**FUNCTION["Properties"], "ReservedConcurrentExecutions": 4},
    }
    template = {
        "Conditions": {"IsProd": {"Fn::Equals": ["dev", "prod"]}},
        "Resources": {
            "Role": ROLE,
            "Queue": QUEUE,
            "Function": function,
            "Capped": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "FunctionName": {"Ref": "Function"},
                    "ScalingConfig": {"MaximumConcurrency": 2},
                },
            },
            "Uncapped": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "FunctionName": {"Ref": "Function"},
                },
            },
        },
    }
    root = write_assembly(tmp_path, {"Unit": template}, assets={"abc123": "app"})
    stack = deploy(root).stacks["Unit"]

    assert stack.functions["Function"].reserved_concurrency == 4
    routes = {route.source: route for route in stack.routes}
    assert routes["Capped"].maximum_concurrency == 2
    assert routes["Uncapped"].maximum_concurrency is None
