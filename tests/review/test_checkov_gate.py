"""checkov in the review gate: every finding on every stack is fixed or skipped with a reason."""

from __future__ import annotations

import json

import pytest
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from conveyor.constructs.buckets import access_logs_bucket, secure_bucket
from conveyor.constructs.checkov import CdkFrameworkSkips, checkov_skip, checkov_skips
from conveyor.constructs.functions import python_function
from conveyor.review import render, review
from conveyor.review_checkov import CheckovFinding, CheckovReport, checkov_command, scan_template
from conveyor.review_checkov import render as render_checkov

pytestmark = pytest.mark.skipif(
    checkov_command() is None, reason="checkov is not installed (make setup)"
)


@pytest.fixture(scope="module")
def reviews(synthesized):
    return review(synthesized["outdir"])


def test_checkov_reports_no_unexplained_finding_on_any_stack(reviews):
    assert len(reviews) == 10
    for item in reviews:
        assert item.checkov is not None, item.name
        assert item.checkov.error is None, (item.name, item.checkov.error)
        assert item.checkov.passed > 0, item.name
        assert item.checkov.unexplained == [], (item.name, item.checkov.unexplained)


def test_every_checkov_skip_gives_a_specific_reason(reviews):
    skips = [skip for item in reviews for skip in item.checkov.skipped]  # type: ignore[union-attr]
    assert skips
    for skip in skips:
        assert skip.check_id.startswith("CKV_"), skip
        assert len(skip.comment) >= 40, skip


def test_findings_fixed_rather_than_skipped(reviews):
    """Log groups and environment variables are KMS-encrypted, the API is traced: nothing
    skips these checks."""
    fixed = {"CKV_AWS_158", "CKV_AWS_73"}
    for item in reviews:
        assert not [s for s in item.checkov.skipped if s.check_id in fixed], item.name  # type: ignore[union-attr]
    own = [
        s
        for item in reviews
        for s in item.checkov.skipped  # type: ignore[union-attr]
        if s.check_id == "CKV_AWS_173"
    ]
    # Only CDK's own provider functions skip the environment check.
    assert own
    assert all(s.comment.startswith("CDK's own custom-resource handler") for s in own), own


def test_summary_prints_checkov_skips_beside_the_nag_acknowledgements(reviews):
    summary = render(reviews)
    assert summary.endswith("Review: PASS (10 stacks)")
    assert "0 unexplained" in summary
    assert "    skip CKV_AWS_117 on " in summary
    assert summary.count("  checkov 3.") == 10


def test_every_log_group_and_function_environment_is_encrypted_with_a_key(synthesized):
    for stack in synthesized["stacks"].values():
        template = json.loads(
            (synthesized["outdir"] / f"{stack.artifact_id}.template.json").read_text()
        )
        for logical_id, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Logs::LogGroup":
                assert "KmsKeyId" in props, (stack.stack_name, logical_id)
            if resource["Type"] == "AWS::Lambda::Function" and props.get("Environment"):
                skipped = {
                    s["id"] for s in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
                }
                assert "KmsKeyArn" in props or "CKV_AWS_173" in skipped, (
                    stack.stack_name,
                    logical_id,
                )


def test_checkov_fails_an_unencrypted_log_group():
    """Negative control: checkov runs and finds a real problem."""
    report = scan_template(
        {
            "Resources": {
                "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 30}}
            }
        }
    )
    assert report.error is None
    assert [(f.check_id, f.logical_id) for f in report.failed] == [("CKV_AWS_158", "Logs")]
    assert not report.ok
    assert any(
        line.startswith("    UNEXPLAINED CKV_AWS_158 on Logs") for line in render_checkov(report)
    )


def test_a_skip_without_a_reason_is_unexplained():
    report = scan_template(
        {
            "Resources": {
                "Logs": {
                    "Type": "AWS::Logs::LogGroup",
                    "Properties": {"RetentionInDays": 30},
                    "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_158", "comment": "x"}]}},
                }
            }
        }
    )
    assert report.failed == []
    assert [s.check_id for s in report.skipped] == ["CKV_AWS_158"]
    assert [s.check_id for s in report.unexplained] == ["CKV_AWS_158"]
    assert not report.ok


def test_review_fails_when_checkov_did_not_run():
    missing = CheckovReport(error="checkov is not installed")
    assert not missing.ok
    assert render_checkov(missing) == ["  checkov: NOT RUN (checkov is not installed)"]
    assert render_checkov(None) == ["  checkov: NOT RUN on this stack"]
    explained = CheckovReport(
        passed=1, skipped=[CheckovFinding("CKV_AWS_117", "Fn", "VPC", "a reason " * 6)]
    )
    assert explained.ok


def test_checkov_skip_writes_template_metadata_and_replaces_a_previous_reason(make_app):
    stack = Stack(make_app(), "Skips")
    bucket = s3.Bucket(stack, "Bucket")
    checkov_skip(bucket, "CKV_AWS_21", "first reason, long enough to be a real reason here")
    checkov_skip(bucket, "CKV_AWS_21", "second reason, long enough to be a real reason too")
    checkov_skip(bucket, "CKV_AWS_18", "access logging is configured elsewhere for this test")
    Template.from_stack(stack).has_resource(
        "AWS::S3::Bucket",
        {
            "Metadata": {
                "checkov": {
                    "skip": [
                        {"id": "CKV_AWS_21", "comment": Match.string_like_regexp("^second")},
                        {"id": "CKV_AWS_18", "comment": Match.any_value()},
                    ]
                }
            }
        },
    )


@pytest.mark.parametrize(
    ("check_id", "comment", "message"),
    [
        ("AwsSolutions-S1", "a reason that is long enough to count as a reason", "not a checkov"),
        ("CKV_AWS_21", "too short", "must say why"),
    ],
)
def test_checkov_skip_rejects_bad_ids_and_empty_reasons(make_app, check_id, comment, message):
    stack = Stack(make_app(), "Bad")
    bucket = s3.Bucket(stack, "Bucket")
    with pytest.raises(ValueError, match=message):
        checkov_skip(bucket, check_id, comment)


def test_framework_aspect_explains_cdk_provider_functions_in_any_stack(make_app):
    """A stack no Conveyor construct built: the aspect still covers CDK's own functions."""
    from aws_cdk import Aspects

    app = make_app()
    stack = Stack(app, "AnyStack")
    s3.Bucket(stack, "Data", removal_policy=RemovalPolicy.DESTROY, auto_delete_objects=True)
    Aspects.of(app).add(CdkFrameworkSkips())
    resources = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    (handler,) = resources.values()
    ids = {skip["id"] for skip in handler["Metadata"]["checkov"]["skip"]}
    assert ids == {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_115", "CKV_AWS_173"}


def test_provider_framework_functions_carry_their_reasons_without_a_vpc_claim_in_a_vpc(make_app):
    from aws_cdk import Aspects
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import custom_resources as cr

    app = make_app()
    stack = Stack(app, "AnyStack")
    handler = lambda_.Function(
        stack,
        "OnEvent",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(e, c): return {}"),
    )
    cr.Provider(stack, "Plain", on_event_handler=handler)
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="P", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )
    cr.Provider(stack, "InVpc", on_event_handler=handler, vpc=vpc)
    Aspects.of(app).add(CdkFrameworkSkips())
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    skips = {
        logical_id: {s["id"]: s["comment"] for s in body["Metadata"]["checkov"]["skip"]}
        for logical_id, body in functions.items()
        if "frameworkonEvent" in logical_id
    }
    plain = next(v for k, v in skips.items() if k.startswith("Plain"))
    in_vpc = next(v for k, v in skips.items() if k.startswith("InVpc"))
    assert set(plain) == {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_115", "CKV_AWS_173"}
    assert "response URL as FAILED" in plain["CKV_AWS_116"]
    assert set(in_vpc) == {"CKV_AWS_116", "CKV_AWS_115", "CKV_AWS_173"}
    # The user's own handler is not CDK's: it explains its own checks.
    assert not [
        k
        for k in functions
        if k.startswith("OnEvent") and "checkov" in functions[k].get("Metadata", {})
    ]


def test_python_function_encrypts_its_logs_and_environment_with_the_given_key(make_app):
    from conveyor.constructs.queues import new_key

    stack = Stack(make_app(), "Fn")
    key = new_key(stack, "Key", description="test", removal_policy=RemovalPolicy.DESTROY)
    function, _ = python_function(
        stack,
        code=lambda_.Code.from_inline("def handler(e, c): return None"),
        handler="index.handler",
        timeout=Duration.seconds(10),
        environment={"NAME": "value"},
        encryption_key=key,
        log_retention=logs.RetentionDays.ONE_WEEK,
    )
    template = Template.from_stack(stack)
    key_id = stack.get_logical_id(key.node.default_child)  # type: ignore[arg-type]
    template.has_resource_properties(
        "AWS::Logs::LogGroup", {"KmsKeyId": {"Fn::GetAtt": [key_id, "Arn"]}}
    )
    template.has_resource_properties(
        "AWS::Lambda::Function", {"KmsKeyArn": {"Fn::GetAtt": [key_id, "Arn"]}}
    )
    # CloudWatch Logs of this region may use the key for this account's log groups only.
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "AllowCloudWatchLogsOfThisAccount",
                                "Condition": {
                                    "ArnLike": {
                                        "kms:EncryptionContext:aws:logs:arn": Match.any_value()
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )
    skipped = {s["id"] for s in checkov_skips(function.node.default_child)}  # type: ignore[arg-type]
    assert skipped == {"CKV_AWS_117", "CKV_AWS_115"}


def test_data_buckets_are_versioned_and_log_buckets_say_why_not(make_app):
    stack = Stack(make_app(), "Buckets")
    logs_bucket = access_logs_bucket(stack, "Logs")
    secure_bucket(stack, "Data", server_access_logs_bucket=logs_bucket)
    template = Template.from_stack(stack)
    buckets = template.find_resources("AWS::S3::Bucket")
    data = next(b for k, b in buckets.items() if k.startswith("Data"))
    log = next(b for k, b in buckets.items() if k.startswith("Logs"))
    assert data["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert {"NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "Status": "Enabled"} in data[
        "Properties"
    ]["LifecycleConfiguration"]["Rules"]
    assert "VersioningConfiguration" not in log["Properties"]
    assert {s["id"] for s in log["Metadata"]["checkov"]["skip"]} == {"CKV_AWS_18", "CKV_AWS_21"}
