"""``conveyor cost`` against costs computed by hand for small templates written here.

Unit prices used below are the us-east-1 list prices (AWS pricing pages): SQS $0.40 per
million standard requests and $0.50 FIFO, SNS $0.50 per million publishes and $2 per 100,000
e-mails, EventBridge $1 per million custom events and $0.10 per GB archived, Lambda $0.20 per
million requests, $0.0000166667 (x86_64) / $0.0000133334 (arm64) per GB-second, CloudWatch
Logs $0.50 per GB, DynamoDB $0.625 per million WRU, Kinesis $0.015 per shard-hour and $0.014
per million PUT units, Step Functions $0.025 per 1,000 transitions.
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.cost import Assumptions, estimate, format_report, load_prices
from conveyor.templates import StackTemplate

KB_PER_GB = 1024 * 1024
EMPTY_RECEIVES = 5 * 30 * 24 * 3600 / 20  # 5 pollers, one 20 s long poll each, all month


def resource(rtype: str, path: str, **properties: Any) -> dict[str, Any]:
    return {"Type": rtype, "Properties": properties, "Metadata": {"aws:cdk:path": f"S/{path}"}}


def function(path: str, role: str, **properties: Any) -> dict[str, Any]:
    return resource("AWS::Lambda::Function", path, Role={"Fn::GetAtt": [role, "Arn"]}, **properties)


def stack(**resources: dict[str, Any]) -> StackTemplate:
    return StackTemplate("S", {"Resources": resources})


def queue_and_function(fifo: bool = False) -> StackTemplate:
    queue_props: dict[str, Any] = {"FifoQueue": True} if fifo else {}
    return stack(
        Queue=resource("AWS::SQS::Queue", "Work/Queue", **queue_props),
        Role=resource("AWS::IAM::Role", "Work/Role"),
        Fn=function("Work/Function", "Role", MemorySize=512, Architectures=["arm64"]),
        Mapping=resource(
            "AWS::Lambda::EventSourceMapping",
            "Work/Mapping",
            EventSourceArn={"Fn::GetAtt": ["Queue", "Arn"]},
            FunctionName={"Ref": "Fn"},
            BatchSize=10,
        ),
    )


@pytest.fixture(scope="module")
def prices():
    return load_prices()


def costs(report) -> dict[tuple[str, str], float]:
    return {(line.resource, line.item): line.cost for line in report.lines}


def test_one_queue_and_one_function_at_a_million_events(prices):
    report = estimate(queue_and_function(), prices, "us-east-1", Assumptions())
    expected = {
        ("Work/Queue", "SendMessage (standard)"): 1_000_000 * 0.40 / 1e6,
        ("Work/Queue", "ReceiveMessage by Work/Function"): 100_000 * 0.40 / 1e6,
        ("Work/Queue", "DeleteMessageBatch"): 100_000 * 0.40 / 1e6,
        ("Work/Queue", "empty receives (Lambda pollers)"): EMPTY_RECEIVES * 0.40 / 1e6,
        ("Work/Function", "invocations"): 100_000 * 0.20 / 1e6,
        # 100,000 batches × 0.1 s × 0.5 GB = 5,000 GB-s
        ("Work/Function", "duration (arm64, 512 MB)"): 5_000 * 0.0000133334,
        ("Work/Function", "log ingestion"): 100_000 / KB_PER_GB * 0.50,
    }
    assert costs(report) == pytest.approx(expected)
    assert report.total == pytest.approx(0.873551, abs=1e-6)


def test_fifo_requests_count_each_64_kb_chunk_at_the_fifo_price(prices):
    report = estimate(
        queue_and_function(fifo=True), prices, "us-east-1", Assumptions(payload_kb=100)
    )
    lines = costs(report)
    assert lines[("Work/Queue", "SendMessage (FIFO)")] == pytest.approx(2_000_000 * 0.50 / 1e6)
    # a batch of 10 × 100 KB = 1,000 KB → 16 chunks of 64 KB per receive
    assert lines[("Work/Queue", "ReceiveMessage by Work/Function")] == pytest.approx(
        100_000 * 16 * 0.50 / 1e6
    )


def test_batch_size_and_duration_can_be_given(prices):
    report = estimate(
        queue_and_function(),
        prices,
        "us-east-1",
        Assumptions(batch_size=5, durations={"Work/Function": 250}),
    )
    lines = costs(report)
    assert lines[("Work/Function", "invocations")] == pytest.approx(200_000 * 0.20 / 1e6)
    assert lines[("Work/Function", "duration (arm64, 512 MB)")] == pytest.approx(
        200_000 * 0.25 * 0.5 * 0.0000133334
    )


def test_sns_publishes_and_deliveries_by_protocol_with_a_matching_fraction(prices):
    template = stack(
        Topic=resource("AWS::SNS::Topic", "Orders/Topic"),
        Queue=resource("AWS::SQS::Queue", "Big/Queue"),
        ToQueue=resource(
            "AWS::SNS::Subscription",
            "Big/Subscription",
            TopicArn={"Ref": "Topic"},
            Endpoint={"Fn::GetAtt": ["Queue", "Arn"]},
            Protocol="sqs",
            FilterPolicy={"total": [{"numeric": [">=", 100]}]},
        ),
        ToMail=resource(
            "AWS::SNS::Subscription",
            "Mail/Subscription",
            TopicArn={"Ref": "Topic"},
            Endpoint="ops@example.com",
            Protocol="email",
        ),
    )
    report = estimate(template, prices, "us-east-1", Assumptions(per_event={"Big/Queue": 0.25}))
    lines = costs(report)
    assert lines[("Orders/Topic", "Publish")] == pytest.approx(0.50)
    assert lines[("Orders/Topic", "deliveries (email) to e-mail")] == pytest.approx(
        1_000_000 * 2.00 / 100_000
    )
    assert lines[("Orders/Topic", "deliveries (sqs) to Big/Queue")] == 0
    assert lines[("Big/Queue", "SendMessage (standard)")] == pytest.approx(250_000 * 0.40 / 1e6)
    assert report.total == pytest.approx(0.50 + 20.0 + 0.10)


def test_eventbridge_custom_events_archive_and_an_x86_function(prices):
    template = stack(
        Bus=resource("AWS::Events::EventBus", "Bus", Name="b"),
        Role=resource("AWS::IAM::Role", "Review/Role"),
        Fn=function("Review/Function", "Role"),  # defaults: 128 MB, x86_64
        Rule=resource(
            "AWS::Events::Rule",
            "Rule",
            EventBusName={"Ref": "Bus"},
            EventPattern={"source": ["app"]},
            Targets=[{"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}, "Id": "t"}],
        ),
        Archive=resource(
            "AWS::Events::Archive",
            "Archive",
            SourceArn={"Fn::GetAtt": ["Bus", "Arn"]},
            RetentionDays=30,
        ),
    )
    report = estimate(template, prices, "us-east-1", Assumptions())
    gb = 1_000_000 / KB_PER_GB
    assert costs(report) == pytest.approx(
        {
            ("Bus", "custom events"): 1.00,
            ("Review/Function", "invocations"): 0.20,
            ("Review/Function", "duration (x86_64, 128 MB)"): 1_000_000
            * 0.1
            * 0.125
            * 0.0000166667,
            ("Review/Function", "log ingestion"): gb * 0.50,
            ("Archive", "events archived"): gb * 0.10,
            ("Archive", "archive storage"): gb * 0.023,
        }
    )


def test_dynamodb_writes_count_one_unit_per_kb(prices):
    template = stack(
        Bus=resource("AWS::Events::EventBus", "Bus", Name="b"),
        Table=resource("AWS::DynamoDB::Table", "Table"),
        Role=resource("AWS::IAM::Role", "Writer/Role"),
        Policy=resource(
            "AWS::IAM::Policy",
            "Writer/Policy",
            Roles=[{"Ref": "Role"}],
            PolicyDocument={
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "dynamodb:PutItem",
                        "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
                    }
                ]
            },
        ),
        Fn=function("Writer/Function", "Role"),
        Rule=resource(
            "AWS::Events::Rule",
            "Rule",
            EventBusName={"Ref": "Bus"},
            EventPattern={"source": ["app"]},
            Targets=[{"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}, "Id": "t"}],
        ),
    )
    report = estimate(template, prices, "us-east-1", Assumptions(payload_kb=3))
    lines = costs(report)
    assert lines[("Table", "write request units (on-demand)")] == pytest.approx(3 * 0.625)


def test_kinesis_shards_and_put_units_and_step_functions_transitions(prices):
    template = stack(
        Stream=resource("AWS::Kinesis::Stream", "Stream", ShardCount=2),
        Machine=resource(
            "AWS::StepFunctions::StateMachine",
            "Machine",
            DefinitionString='{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},'
            '"B":{"Type":"Succeed"}}}',
        ),
    )
    report = estimate(template, prices, "us-east-1", Assumptions(payload_kb=30))
    lines = costs(report)
    assert lines[("Stream", "shard-hours")] == pytest.approx(2 * 730 * 0.015)
    # a stream nobody writes to in the template still gets its shard-hours; no PUT units
    assert ("Stream", "PUT payload units") not in lines
    assert ("Machine", "state transitions (Standard)") not in lines  # no traffic reaches it


def test_free_tier_is_ignored_by_default_and_applied_on_request(prices):
    without = estimate(queue_and_function(), prices, "us-east-1", Assumptions())
    with_free = estimate(queue_and_function(), prices, "us-east-1", Assumptions(free_tier=True))
    assert not any(line.item.startswith("free tier") for line in without.lines)
    # Lambda (100,000 requests, 5,000 GB-s) and logs (0.1 GB) fit in the free tier; SQS makes
    # 1,000,000 + 100,000 + 100,000 + 648,000 requests, of which 1,000,000 are free.
    assert with_free.total == pytest.approx((1_848_000 - 1_000_000) * 0.40 / 1e6)


def test_the_price_table_is_dated_sourced_and_region_aware(prices):
    assert prices.retrieved == "2026-12-02"
    assert prices.currency == "USD"
    assert "Price List API" in prices.source
    us, paris = prices.region("us-east-1"), prices.region("eu-west-3")
    assert set(us) - {"unverified"} == set(paris) - {"unverified"}
    assert us["sqs_standard_per_million"] == 0.40
    assert us["lambda_gb_second_arm64"] == 0.0000133334
    with pytest.raises(KeyError, match="no prices for region 'mars-1'"):
        prices.region("mars-1")


def test_the_report_prints_source_date_region_total_and_assumptions(prices):
    report = estimate(queue_and_function(), prices, "eu-west-3", Assumptions())
    text = format_report(report)
    assert "eu-west-3" in text
    assert "2026-12-02" in text
    assert "free tiers ignored" in text
    assert "TOTAL" in text
    assert "one receive per batch of 10" in text
    markdown = format_report(report, "markdown")
    assert "| **total** |" in markdown


def allow(role: str, action: str, target: str) -> dict[str, Any]:
    return resource(
        "AWS::IAM::Policy",
        f"{role}/Policy",
        Roles=[{"Ref": role}],
        PolicyDocument={
            "Statement": [
                {"Effect": "Allow", "Action": action, "Resource": {"Fn::GetAtt": [target, "Arn"]}}
            ]
        },
    )


def test_kinesis_stream_read_by_a_function_in_batches(prices):
    template = stack(
        Stream=resource("AWS::Kinesis::Stream", "Clicks", ShardCount=2),
        Role=resource("AWS::IAM::Role", "Reader/Role"),
        Fn=function("Reader/Function", "Role"),
        Mapping=resource(
            "AWS::Lambda::EventSourceMapping",
            "Reader/Mapping",
            EventSourceArn={"Fn::GetAtt": ["Stream", "Arn"]},
            FunctionName={"Ref": "Fn"},
            BatchSize=100,
            StartingPosition="TRIM_HORIZON",
        ),
    )
    report = estimate(template, prices, "us-east-1", Assumptions(payload_kb=30))
    lines = costs(report)
    assert lines[("Clicks", "shard-hours")] == pytest.approx(2 * 730 * 0.015)
    # 30 KB records are 2 PUT payload units of 25 KB
    assert lines[("Clicks", "PUT payload units")] == pytest.approx(2 * 0.014)
    assert lines[("Reader/Function", "invocations")] == pytest.approx(10_000 * 0.20 / 1e6)


def test_express_state_machine_requests_and_duration(prices):
    template = stack(
        Role=resource("AWS::IAM::Role", "Flow/Role"),
        Machine=resource(
            "AWS::StepFunctions::StateMachine",
            "Flow",
            StateMachineType="EXPRESS",
            RoleArn={"Fn::GetAtt": ["Role", "Arn"]},
        ),
        Queue=resource("AWS::SQS::Queue", "Out"),
        Policy=allow("Role", "sqs:SendMessage", "Queue"),
    )
    report = estimate(template, prices, "us-east-1", Assumptions())
    lines = costs(report)
    assert lines[("Flow", "Express executions")] == pytest.approx(1.00)
    # 1M executions × 0.1 s × 64 MB = 6,250 GB-s
    assert lines[("Flow", "Express duration")] == pytest.approx(6_250 * 0.00001667)
    assert lines[("Out", "SendMessage (standard)")] == pytest.approx(0.40)


def test_standard_state_machine_transitions_counted_from_its_definition(prices):
    template = stack(
        Role=resource("AWS::IAM::Role", "Saga/Role"),
        Machine=resource(
            "AWS::StepFunctions::StateMachine",
            "Saga",
            RoleArn={"Fn::GetAtt": ["Role", "Arn"]},
            DefinitionString='{"StartAt":"A","States":{"A":{"Type":"Task","Next":"B"},'
            '"B":{"Type":"Task","Next":"C"},"C":{"Type":"Succeed"}}}',
        ),
        Table=resource("AWS::DynamoDB::Table", "Orders"),
        Policy=allow("Role", "dynamodb:PutItem", "Table"),
    )
    report = estimate(template, prices, "us-east-1", Assumptions())
    assert costs(report)[("Saga", "state transitions (Standard)")] == pytest.approx(
        3_000_000 * 0.025 / 1000
    )


def test_broker_hours_for_amazon_mq_and_msk(prices):
    template = stack(
        Broker=resource(
            "AWS::AmazonMQ::Broker",
            "Rabbit",
            EngineType="RABBITMQ",
            HostInstanceType="mq.m5.large",
            DeploymentMode="ACTIVE_STANDBY_MULTI_AZ",
        ),
        Cluster=resource(
            "AWS::MSK::Cluster",
            "Kafka",
            NumberOfBrokerNodes=3,
            BrokerNodeGroupInfo={"InstanceType": "kafka.m5.large"},
        ),
    )
    lines = costs(estimate(template, prices, "us-east-1", Assumptions()))
    assert lines[("Rabbit", "broker hours (mq.m5.large)")] == pytest.approx(2 * 730 * 0.288)
    assert lines[("Kafka", "broker hours (kafka.m5.large)")] == pytest.approx(3 * 730 * 0.21)


def test_http_api_requests_and_archive_replays(prices):
    template = stack(
        Api=resource("AWS::ApiGatewayV2::Api", "Http", ProtocolType="HTTP"),
        Queue=resource("AWS::SQS::Queue", "Inbox"),
        Integration=resource(
            "AWS::ApiGatewayV2::Integration",
            "Http/Integration",
            ApiId={"Ref": "Api"},
            IntegrationType="AWS_PROXY",
            IntegrationSubtype="SQS-SendMessage",
            RequestParameters={"QueueUrl": {"Ref": "Queue"}, "MessageBody": "$request.body"},
        ),
        Route=resource(
            "AWS::ApiGatewayV2::Route",
            "Http/Route",
            ApiId={"Ref": "Api"},
            RouteKey="POST /inbox",
            Target={"Fn::Join": ["", ["integrations/", {"Ref": "Integration"}]]},
        ),
        Bus=resource("AWS::Events::EventBus", "Bus", Name="b"),
        Archive=resource(
            "AWS::Events::Archive", "Archive", SourceArn={"Fn::GetAtt": ["Bus", "Arn"]}
        ),
        Rule=resource(
            "AWS::Events::Rule",
            "Rule",
            EventBusName={"Ref": "Bus"},
            EventPattern={"source": ["x"]},
            Targets=[{"Arn": {"Fn::GetAtt": ["Queue", "Arn"]}, "Id": "t"}],
        ),
    )
    lines = costs(estimate(template, prices, "us-east-1", Assumptions(replay_fraction=0.5)))
    assert lines[("Http", "HTTP API requests")] == pytest.approx(1.00)
    assert lines[("Archive", "replayed events")] == pytest.approx(0.50)
    # the inbox gets the API's messages and the rule's
    assert lines[("Inbox", "SendMessage (standard)")] == pytest.approx(2 * 0.40)


def test_a_scheduled_rule_runs_its_target_at_the_schedules_rate(prices):
    template = stack(
        Role=resource("AWS::IAM::Role", "Tick/Role"),
        Fn=function("Tick/Function", "Role"),
        Rule=resource(
            "AWS::Events::Rule",
            "Every5",
            ScheduleExpression="rate(5 minutes)",
            Targets=[{"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}, "Id": "t"}],
        ),
    )
    lines = costs(estimate(template, prices, "us-east-1", Assumptions()))
    # 30 days × 24 h × 12 runs an hour = 8,640 invocations, whatever --events says
    assert lines[("Tick/Function", "invocations")] == pytest.approx(8_640 * 0.20 / 1e6)


def test_a_function_url_takes_every_event_and_a_scheduler_its_rate(prices):
    template = stack(
        Role=resource("AWS::IAM::Role", "Api/Role"),
        Fn=function("Api/Function", "Role"),
        Url=resource(
            "AWS::Lambda::Url", "Api/Url", TargetFunctionArn={"Fn::GetAtt": ["Fn", "Arn"]}
        ),
        Nightly=resource(
            "AWS::Scheduler::Schedule",
            "Nightly",
            ScheduleExpression="rate(1 day)",
            Target={"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}},
        ),
    )
    lines = costs(estimate(template, prices, "us-east-1", Assumptions()))
    assert lines[("Api/Function", "invocations")] == pytest.approx((1_000_000 + 30) * 0.20 / 1e6)


def _price_list(usd: str) -> list[str]:
    import json

    return [
        json.dumps(
            {
                "product": {"attributes": {"group": "AWS-Lambda-Requests"}},
                "terms": {
                    "OnDemand": {
                        "X.Y": {
                            "priceDimensions": {
                                "X.Y.Z": {
                                    "beginRange": "0",
                                    "endRange": "Inf",
                                    "unit": "Requests",
                                    "pricePerUnit": {"USD": usd},
                                }
                            }
                        }
                    }
                },
            }
        )
    ]


def test_refresh_from_the_price_list_api_replaces_what_it_answers(prices):
    import boto3
    from botocore.stub import Stubber

    from conveyor.cost import PRICE_LIST_QUERIES, refresh_prices

    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        for key, (service, attributes, _) in PRICE_LIST_QUERIES.items():
            filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-3"}] + [
                {"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in attributes.items()
            ]
            answer = _price_list("0.0000002500") if key == "lambda_requests_per_million" else []
            stub.add_response(
                "get_products",
                {"PriceList": answer, "FormatVersion": "aws_v1"},
                {"ServiceCode": service, "Filters": filters, "MaxResults": 10},
            )
        table = refresh_prices(prices, ["eu-west-3"], client, "2027-01-01")
        stub.assert_no_pending_responses()
    paris = table["regions"]["eu-west-3"]
    assert paris["lambda_requests_per_million"] == 0.25
    assert "lambda_requests_per_million" not in paris["unverified"]
    # what the API did not answer keeps the shipped figure and says so
    assert paris["sqs_standard_per_million"] == 0.40
    assert "sqs_standard_per_million" in paris["unverified"]
    assert table["retrieved"] == "2027-01-01"
    assert "Price List API" in table["source"]


def test_refresh_without_credentials_says_so(monkeypatch, tmp_path, capsys):
    from conveyor.cli import main

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    out = tmp_path / "prices.json"
    assert main(["cost", "--refresh-prices", str(out)]) == 2
    assert "needs AWS credentials" in capsys.readouterr().out
    assert not out.exists()


def test_an_event_store_stream_feeds_its_projector_in_batches_without_a_read_charge(prices):
    """The Accounts shape: a writer appends to a table whose stream a projector reads.
    Lambda's reads of a DynamoDB stream are free; the projector is invoked per batch."""
    template = stack(
        Bus=resource("AWS::Events::EventBus", "Bus", Name="b"),
        Store=resource(
            "AWS::DynamoDB::Table",
            "EventStore/Events",
            StreamSpecification={"StreamViewType": "NEW_IMAGE"},
        ),
        Role=resource("AWS::IAM::Role", "Commands/Role"),
        Policy=resource(
            "AWS::IAM::Policy",
            "Commands/Policy",
            Roles=[{"Ref": "Role"}],
            PolicyDocument={
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "dynamodb:PutItem",
                        "Resource": {"Fn::GetAtt": ["Store", "Arn"]},
                    }
                ]
            },
        ),
        Fn=function("Commands/Function", "Role"),
        Rule=resource(
            "AWS::Events::Rule",
            "Rule",
            EventBusName={"Ref": "Bus"},
            EventPattern={"source": ["app"]},
            Targets=[{"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}, "Id": "t"}],
        ),
        ProjectorRole=resource("AWS::IAM::Role", "Projector/Role"),
        Projector=function("Projector/Function", "ProjectorRole"),
        Mapping=resource(
            "AWS::Lambda::EventSourceMapping",
            "Projector/Mapping",
            EventSourceArn={"Fn::GetAtt": ["Store", "StreamArn"]},
            FunctionName={"Ref": "Projector"},
            BatchSize=100,
            StartingPosition="TRIM_HORIZON",
        ),
    )
    report = estimate(template, prices, "us-east-1", Assumptions())
    lines = costs(report)
    assert lines[("EventStore/Events", "write request units (on-demand)")] == pytest.approx(0.625)
    assert lines[("Projector/Function", "invocations")] == pytest.approx(10_000 * 0.20 / 1e6)
    assert not [
        item for resource, item in lines if resource == "EventStore/Events" and "stream" in item
    ]
