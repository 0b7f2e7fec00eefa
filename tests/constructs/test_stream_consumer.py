"""StreamConsumer: defaults, options and the synth-time error paths."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from conveyor.constructs.stream_consumer import StreamConsumer

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def props(**overrides: Any) -> dict[str, Any]:
    return {"code": CODE, "handler": "index.handler", **overrides}


@pytest.fixture(scope="module")
def template(make_app) -> Template:
    stack = Stack(make_app(), "StreamConsumerTest")
    StreamConsumer(stack, "Plain", **props())
    StreamConsumer(
        stack,
        "Tuned",
        **props(
            shard_count=2,
            retention_period=Duration.days(7),
            failure_destination="sqs",
            enhanced_fan_out=True,
            parallelization_factor=4,
            tumbling_window=Duration.seconds(60),
            starting_position=lambda_.StartingPosition.AT_TIMESTAMP,
            starting_position_timestamp=1764669600,
        ),
    )
    return Template.from_stack(stack)


def test_the_default_stream_is_on_demand_and_encrypted_with_a_customer_managed_key(template):
    template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
            "RetentionPeriodHours": 24,
            "StreamEncryption": {
                "EncryptionType": "KMS",
                "KeyId": {"Fn::GetAtt": [Match.string_like_regexp("^PlainKey"), "Arn"]},
            },
        },
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_the_default_mapping_never_blocks_a_shard(template):
    """CDK's defaults (no bisect, infinite retries, no age, no destination) are replaced."""
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("^PlainStream"), "Arn"]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 3,
            "MaximumRecordAgeInSeconds": 3600,
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 100,
            "DestinationConfig": {
                "OnFailure": {
                    "Destination": {
                        "Fn::GetAtt": [Match.string_like_regexp("^PlainFailureBucket"), "Arn"]
                    }
                }
            },
        },
    )


def test_options_reach_the_stream_and_the_mapping(template):
    template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "ShardCount": 2,
            "RetentionPeriodHours": 168,
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {
                "Fn::GetAtt": [Match.string_like_regexp("^TunedFanOutConsumer"), "ConsumerARN"]
            },
            "ParallelizationFactor": 4,
            "TumblingWindowInSeconds": 60,
            "StartingPosition": "AT_TIMESTAMP",
            "StartingPositionTimestamp": 1764669600,
            "DestinationConfig": {
                "OnFailure": {
                    "Destination": {
                        "Fn::GetAtt": [Match.string_like_regexp("^TunedFailureQueue"), "Arn"]
                    }
                }
            },
        },
    )
    template.resource_count_is("AWS::Kinesis::StreamConsumer", 1)


def test_alarms_watch_the_iterator_age_and_the_errors(template):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "IteratorAge", "Statistic": "Maximum", "Threshold": 300_000},
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "Errors", "Threshold": 0, "TreatMissingData": "notBreaching"},
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"retry_attempts": -1}, "retry_attempts must be between 0 and 10000"),
        ({"max_record_age": Duration.seconds(30)}, "max_record_age must be between 60 seconds"),
        ({"batch_size": 0}, "batch_size must be between 1 and 10000"),
        ({"parallelization_factor": 11}, "parallelization_factor must be between 1 and 10"),
        ({"retention_period": Duration.hours(12)}, "retention_period must be between 24 hours"),
        ({"tumbling_window": Duration.seconds(901)}, "tumbling_window must be between 1 and 900"),
        ({"failure_destination": "sns"}, "failure_destination must be one of s3, sqs"),
        ({"shard_count": 0}, "shard_count must be at least 1"),
        (
            {"starting_position": lambda_.StartingPosition.AT_TIMESTAMP},
            "starting_position_timestamp goes with starting_position=AT_TIMESTAMP",
        ),
        (
            {"max_record_age": Duration.days(2)},
            "max_record_age above retention_period never applies",
        ),
    ],
)
def test_invalid_settings_are_rejected_at_synth_naming_the_construct(make_app, overrides, message):
    stack = Stack(make_app(), "Invalid")
    with pytest.raises(ValueError, match=rf"Invalid/Readings: {message}"):
        StreamConsumer(stack, "Readings", **props(**overrides))
