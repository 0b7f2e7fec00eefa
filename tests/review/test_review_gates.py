"""Review gates on the app exactly as app.py builds it: cdk-nag AwsSolutions and cfn-lint."""

from __future__ import annotations

import json

import pytest
from aws_cdk import Stack
from aws_cdk import aws_sqs as sqs

from conveyor.review import acknowledged_findings, lint_template, render, review
from conveyor.review import main as review_main
from conveyor.topologies import attach_review_plugins


def templates(synthesized) -> dict[str, dict]:
    return {
        stack.stack_name: json.loads(
            (synthesized["outdir"] / f"{stack.artifact_id}.template.json").read_text()
        )
        for stack in synthesized["stacks"].values()
    }


@pytest.fixture(scope="module")
def reviews(synthesized):
    """The review `make synth` prints (cfn-lint included), computed once."""
    return review(synthesized["outdir"])


def test_every_stack_passes_cdk_nag_with_no_unacknowledged_finding(synthesized, reviews):
    # The fixture's app.synth() would have raised ValidationFailed on any finding.
    assert {r.name for r in reviews} == {s.artifact_id for s in synthesized["stacks"].values()}
    assert all(r.nag_findings == [] for r in reviews)


def test_every_acknowledgement_names_a_rule_and_gives_a_specific_reason(synthesized):
    found = [ack for t in templates(synthesized).values() for ack in acknowledged_findings(t)]
    assert found, "expected the documented acknowledgements to be present"
    for logical_id, rule_id, reason in found:
        # cdk-nag's rules, and those CDK itself acknowledges with its own reason (cfn-lint
        # W3010 on a stack whose VPC reads the AZs, F3002 on the flow-log role: the broker stacks).
        assert rule_id.startswith(("AwsSolutions-", "CloudFormation-Validate::")), (
            logical_id,
            rule_id,
        )
        assert len(reason) >= 40, (logical_id, rule_id, reason)


def test_every_template_is_cfn_lint_clean(reviews):
    assert len(reviews) == 10
    for item in reviews:
        assert item.lint_findings == [], item.name


def test_review_summary_passes_and_lists_every_stack(reviews):
    summary = render(reviews)
    assert summary.endswith("Review: PASS (10 stacks)")
    for item in reviews:
        assert f"Stack {item.name}: {sum(item.resources.values())} resources" in summary


def test_cdk_nag_rejects_an_unacknowledged_finding(make_app, tmp_path):
    """Negative control: the same plugin set-up fails synth on an insecure queue."""
    app = make_app(outdir=str(tmp_path))
    stack = Stack(app, "Insecure")
    sqs.Queue(stack, "NoDlqNoTls", encryption=sqs.QueueEncryption.UNENCRYPTED)
    attach_review_plugins(app)
    with pytest.raises(Exception, match="AwsSolutions-SQS"):
        app.synth()


def test_cfn_lint_reports_a_broken_template():
    """Negative control: the lint helper finds real errors (here an unknown property)."""
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"Visibility": 30}}}
    }
    findings = lint_template(template)
    assert any(f.startswith("E3002") for f in findings), findings


def test_every_alarm_of_every_stack_notifies_on_alarm_and_on_ok(synthesized):
    for name, template in templates(synthesized).items():
        alarms = [
            r["Properties"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::CloudWatch::Alarm"
        ]
        assert alarms, name
        for alarm in alarms:
            assert alarm.get("AlarmActions"), (name, alarm)
            assert alarm.get("OKActions"), (name, alarm)
            assert alarm["TreatMissingData"] == "notBreaching", (name, alarm)


def test_every_stack_has_one_dashboard(synthesized):
    for name, template in templates(synthesized).items():
        dashboards = [
            r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"
        ]
        assert len(dashboards) == 1, name


def test_production_settings_also_pass_cdk_nag_and_cfn_lint(make_app, tmp_path):
    """prod: retained resources, API key + usage plan and WAF on the order API."""
    from aws_cdk import RemovalPolicy

    from conveyor.settings import Settings
    from conveyor.topologies import build

    app = make_app(outdir=str(tmp_path))
    settings = Settings(
        environment="prod",
        removal_policy=RemovalPolicy.RETAIN,
        api_authorization="api_key",
        api_waf=True,
    )
    build(app, settings)
    attach_review_plugins(app)
    app.synth()  # raises on any unacknowledged finding
    pipeline = json.loads((tmp_path / "Conveyor-prod-OrderPipeline.template.json").read_text())
    assert lint_template(pipeline) == []
    types = {r["Type"] for r in pipeline["Resources"].values()}
    assert {"AWS::WAFv2::WebACL", "AWS::ApiGateway::UsagePlan"} <= types


def _insecure_app(make_app, outdir, *, review_plugins: bool):
    app = make_app(outdir=str(outdir))
    stack = Stack(app, "Insecure")
    sqs.Queue(stack, "NoDlqNoTls", encryption=sqs.QueueEncryption.UNENCRYPTED)
    if review_plugins:
        attach_review_plugins(app)
    return app


def test_review_of_a_synth_that_cdk_nag_failed_lists_each_unacknowledged_finding(
    make_app, tmp_path
):
    """What `make synth` prints after a failed synth: the findings, counted, and FAIL."""
    app = _insecure_app(make_app, tmp_path, review_plugins=True)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    (item,) = review(tmp_path)
    # An unencrypted queue without a DLQ or a TLS-only policy breaks SQS2, SQS3 and SQS4.
    assert sorted(item.nag_findings) == [
        f"AwsSolutions-SQS{n} at Insecure/NoDlqNoTls/Resource" for n in (2, 3, 4)
    ]
    summary = render([item])
    assert "cdk-nag AwsSolutions: 3 unacknowledged, 0 acknowledged" in summary
    assert "    UNACKNOWLEDGED AwsSolutions-SQS4 at Insecure/NoDlqNoTls/Resource" in summary
    assert summary.endswith("Review: FAIL (1 stacks)")
    assert review_main(["review", str(tmp_path)]) == 1


def test_review_fails_a_stack_that_cdk_nag_never_checked(make_app, tmp_path):
    """Without the review plugins synth succeeds and the report is empty: the review must
    not read that as "0 unacknowledged"."""
    _insecure_app(make_app, tmp_path, review_plugins=False).synth()
    (item,) = review(tmp_path)
    assert item.nag_packs == ()
    assert not item.ok
    summary = render([item])
    assert "cdk-nag: NOT RUN on this stack" in summary
    assert summary.endswith("Review: FAIL (1 stacks)")


def test_every_stack_of_the_app_records_that_cdk_nag_checked_it(reviews):
    assert reviews
    assert all(item.nag_packs == ("AwsSolutions",) for item in reviews)
