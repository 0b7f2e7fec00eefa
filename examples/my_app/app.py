#!/usr/bin/env python3
"""A minimal CDK app of your own that uses Conveyor: uploads to a bucket become messages on an
encrypted queue with a dead-letter queue, consumed by your Lambda handler.

Its cdk.json sets no feature flags at all: Conveyor's constructs set what they need.

    cd examples/my_app
    npx aws-cdk@2.1148.1 synth          # or: CDK_OUTDIR=cdk.out python3 -P app.py
    conveyor review cdk.out             # cdk-nag + cfn-lint summary (the review extra)
    conveyor sandbox up --assembly cdk.out --no-demo
"""

from pathlib import Path

from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_

from constructs import Construct
from conveyor.constructs.bucket_to_queue import BucketToQueue
from conveyor.constructs.queue_consumer import QueueConsumer
from conveyor.review import attach_review

HANDLERS = Path(__file__).resolve().parent / "handlers"


class UploadsStack(Stack):
    """S3 bucket → SQS queue (+ DLQ) → your Lambda function."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.consumer = QueueConsumer(
            self,
            "Uploads",
            code=lambda_.Code.from_asset(str(HANDLERS)),
            handler="uploads.handler.handler",
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.inbox = BucketToQueue(
            self,
            "Inbox",
            queue=self.consumer.queue,
            suffixes=(".jpg", ".json"),
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )


app = App()
UploadsStack(app, "MyUploads")
attach_review(app)  # cdk-nag AwsSolutions: synth fails on any unacknowledged finding
app.synth()
