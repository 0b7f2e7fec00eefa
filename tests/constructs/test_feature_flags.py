"""Constructs work with any valid set of feature flags: the whole app (every construct, as
the stacks use them) synthesizes with an empty context, review gates attached."""

from __future__ import annotations

from aws_cdk import App
from aws_cdk.assertions import Match, Template

from conveyor.settings import Settings
from conveyor.topologies import attach_review_plugins, build


def test_every_construct_synthesizes_without_any_feature_flag(tmp_path):
    app = App(context={"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path))
    stacks = build(app, Settings(environment="noflags"))
    attach_review_plugins(app)
    app.synth()  # cdk-nag raises ValidationFailed on any unacknowledged finding
    image = Template.from_stack(next(s for s in stacks if s.node.id.endswith("ImagePipeline")))
    # Without @aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy CDK would use the
    # LogDeliveryWrite ACL; the constructs grant log delivery with a bucket policy instead.
    image.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "s3:PutObject",
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                            }
                        )
                    ]
                )
            }
        },
    )
    for resource in image.find_resources("AWS::S3::Bucket").values():
        assert "AccessControl" not in resource["Properties"]
