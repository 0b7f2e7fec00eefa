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


# -- StreamDelivery (Firehose -> S3) ----------------------------------------------------------


@pytest.fixture(scope="module")
def delivery_template(make_app) -> Template:
    from conveyor.constructs.stream_delivery import StreamDelivery

    stack = Stack(make_app(), "StreamDeliveryTest")
    source = StreamConsumer(stack, "Source", **props())
    StreamDelivery(stack, "Archive", stream=source.stream, prefix="readings/")
    StreamDelivery(stack, "Direct", buffering_interval=Duration.seconds(60))
    return Template.from_stack(stack)


def test_the_delivery_reads_the_stream_into_gzip_date_partitioned_kms_objects(delivery_template):
    delivery_template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamType": "KinesisStreamAsSource",
            "KinesisStreamSourceConfiguration": {
                "KinesisStreamARN": {
                    "Fn::GetAtt": [Match.string_like_regexp("^SourceStream"), "Arn"]
                }
            },
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {
                    "CompressionFormat": "GZIP",
                    "Prefix": "readings/!{timestamp:yyyy/MM/dd/HH}/",
                    "ErrorOutputPrefix": (
                        "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
                    ),
                    "BufferingHints": {"IntervalInSeconds": 300, "SizeInMBs": 5},
                    "EncryptionConfiguration": {
                        "KMSEncryptionConfig": {
                            "AWSKMSKeyARN": {
                                "Fn::GetAtt": [Match.string_like_regexp("^ArchiveKey"), "Arn"]
                            }
                        }
                    },
                }
            ),
        },
    )


def test_a_direct_put_delivery_is_encrypted_with_the_customer_managed_key(delivery_template):
    delivery_template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamType": "DirectPut",
            "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "CUSTOMER_MANAGED_CMK"},
        },
    )


def test_the_delivery_adds_no_unused_mapping(delivery_template):
    assert "Mappings" not in delivery_template.to_json()


def test_the_delivery_alarms_on_freshness_and_failed_deliveries(delivery_template):
    delivery_template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "DeliveryToS3.DataFreshness", "Namespace": "AWS/Firehose", "Threshold": 900},
    )
    delivery_template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "DeliveryToS3.Success", "ComparisonOperator": "LessThanThreshold"},
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"buffering_interval": Duration.seconds(901)}, "buffering_interval must be between 0"),
        ({"buffering_size_mib": 129}, "buffering_size_mib must be between 1 and 128"),
        ({"prefix": "/data"}, "prefix must end with '/'"),
        ({"prefix": "same/", "error_prefix": "same/"}, "prefix and error_prefix must differ"),
    ],
)
def test_invalid_delivery_settings_are_rejected_naming_the_construct(make_app, overrides, message):
    from conveyor.constructs.stream_delivery import StreamDelivery

    stack = Stack(make_app(), "Invalid")
    with pytest.raises(ValueError, match=rf"Invalid/Archive: {message}"):
        StreamDelivery(stack, "Archive", **overrides)
