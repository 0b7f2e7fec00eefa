"""The review gates, for this project and for any CDK app: ``conveyor review cdk.out``
(or ``python -m conveyor.review cdk.out``).

Public API (documented in the README, "Use Conveyor in your own CDK app"):

- :func:`attach_review` — attach cdk-nag (AwsSolutions) to an app: synth fails on any
  finding not acknowledged with a reason, and each stack records that cdk-nag checked it;
- :func:`acknowledge` — acknowledge one finding on a construct, with its reason;
- :func:`review` / :func:`render` / :func:`main` — the summary of a synthesized assembly,
  with every checker of :data:`TEMPLATE_CHECKERS` (cfn-lint: the ``review`` extra) run on
  every template.

For every stack: resource counts, cdk-nag findings (unacknowledged, from CDK's
``validation-report.json``, and acknowledged with their reasons as written into the template's
``Metadata.cdk_nag``), cfn-lint results, and checkov's (``conveyor.review_checkov``: failed
checks, and skips with the reasons written in ``Metadata.checkov``). Exits non-zero on any
unacknowledged nag finding, on a stack that cdk-nag did not check (its template lacks the
``conveyor:review`` metadata that :func:`conveyor.topologies.attach_review_plugins` writes),
on any cfn-lint match, or on any checkov finding without a reason (or checkov not run).

A synth that cdk-nag failed still writes the templates and the report: ``make synth`` runs the
review after a failed ``cdk synth`` too, so the summary lists the unacknowledged findings.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor import review_checkov

# W3005 (redundant DependsOn) is noise on CDK templates: CDK adds explicit DependsOn next to
# the Ref/GetAtt it already has for deployment ordering of custom resources.
CFN_LINT_IGNORED = ("W3005",)
# Written by conveyor.topologies.attach_review_plugins into the template of every stack the
# cdk-nag packs validated: a successful synth leaves an empty validation report whether or not
# cdk-nag ran, so this is how the review tells a checked stack from one cdk-nag never saw.
REVIEW_METADATA_KEY = "conveyor:review"
REVIEW_PACKS = ("AwsSolutions",)


@dataclass
class StackReview:
    name: str
    resources: Counter[str]
    acknowledged: list[tuple[str, str, str]]  # (logical id, rule id, reason)
    lint_findings: list[str]  # cfn-lint's
    nag_findings: list[str] = field(default_factory=list)
    # The cdk-nag packs that validated this stack (empty: cdk-nag never saw it).
    nag_packs: tuple[str, ...] = ()
    # The findings of the other TEMPLATE_CHECKERS, by checker name.
    findings: dict[str, list[str]] = field(default_factory=dict)
    # checkov's results (None: not run, which fails the review).
    checkov: review_checkov.CheckovReport | None = None

    @property
    def ok(self) -> bool:
        others = any(self.findings.values())
        checkov_ok = self.checkov is not None and self.checkov.ok
        return (
            bool(self.nag_packs)
            and not self.lint_findings
            and not self.nag_findings
            and not others
            and checkov_ok
        )


def lint_template(template: dict[str, Any]) -> list[str]:
    """cfn-lint matches for one template (minus the ignored noise), one line each."""
    from cfnlint.api import ManualArgs, lint  # a second or two to import: only when linting

    matches = lint(json.dumps(template), config=ManualArgs(ignore_checks=list(CFN_LINT_IGNORED)))
    return [f"{m.rule.id} {m.message} ({'/'.join(str(p) for p in m.path)})" for m in matches]


@dataclass(frozen=True)
class TemplateChecker:
    """A tool run on every synthesized template; any finding fails the review.

    :param run: template → findings, one line each.
    :param extra: the package extra that installs the tool (named when it is missing).
    :param note: printed after the count (e.g. the ignored rules).
    """

    name: str
    run: Callable[[dict[str, Any]], list[str]]
    extra: str = "review"
    note: str = ""


# Every checker the review runs, in order; a new one is one entry here.
TEMPLATE_CHECKERS: list[TemplateChecker] = [
    TemplateChecker("cfn-lint", lint_template, note=f"ignored: {', '.join(CFN_LINT_IGNORED)}"),
]


def attach_review(app: Any, *, packs: tuple[str, ...] = REVIEW_PACKS) -> None:
    """Attach the review gates to any CDK ``app`` (before ``app.synth()``).

    cdk-nag's AwsSolutions pack validates every stack: synth fails (``ValidationFailed``) on
    any finding not acknowledged with :func:`acknowledge`; acknowledgements are written into
    each resource's ``Metadata.cdk_nag``, and each stack's template records in
    ``Metadata["conveyor:review"]`` that cdk-nag checked it (the review fails a stack
    without it). checkov (run by :func:`review` on the templates) reads
    ``Metadata.checkov.skip``: Conveyor's constructs write their own reasons
    (:func:`conveyor.constructs.checkov.checkov_skip`), and
    :class:`~conveyor.constructs.checkov.CdkFrameworkSkips`, attached here, explains CDK's own
    provider functions in every stack of the app.
    """
    from aws_cdk import Aspects, Validations
    from cdk_nag import AwsSolutionsChecks

    from conveyor.constructs.checkov import CdkFrameworkSkips

    if tuple(packs) != ("AwsSolutions",):
        raise ValueError(f"attach_review: only the AwsSolutions pack is supported (got {packs})")
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    )
    Aspects.of(app).add(_mark_reviewed(tuple(packs)))
    Aspects.of(app).add(CdkFrameworkSkips())


def _mark_reviewed(packs: tuple[str, ...]) -> Any:
    import jsii
    from aws_cdk import IAspect, Stack

    @jsii.implements(IAspect)
    class MarkReviewed:
        """Records in each stack's template metadata which cdk-nag packs validated it."""

        def visit(self, node: Any) -> None:
            if Stack.is_stack(node):
                metadata = dict(node.template_options.metadata or {})
                metadata[REVIEW_METADATA_KEY] = {"cdk-nag": list(packs)}
                node.template_options.metadata = metadata

    return MarkReviewed()


def acknowledge(scope: Any, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (``"AwsSolutions-SQS3"``, or with its
    ``[Resource::…]`` detail) on ``scope`` and its children, with the reason a reviewer
    reads next to the resource. An empty reason is refused."""
    from aws_cdk import Acknowledgment, Validations

    if not reason.strip():
        raise ValueError(f"acknowledge {rule_id}: give the reason it is acceptable here")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledged_findings(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every cdk-nag acknowledgement written into the template, with its reason."""
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            found.append((logical_id, rule["id"], rule.get("reason", "")))
    return found


def nag_packs(template: dict[str, Any]) -> tuple[str, ...]:
    """The cdk-nag packs that checked this template, as ``attach_review_plugins`` records."""
    marker = template.get("Metadata", {}).get(REVIEW_METADATA_KEY, {})
    packs = marker.get("cdk-nag", []) if isinstance(marker, dict) else []
    return tuple(str(pack) for pack in packs) if isinstance(packs, list) else ()


def nag_violations(assembly: Path) -> dict[str, list[str]]:
    """Unacknowledged cdk-nag findings per stack, from CDK's validation report."""
    report_file = assembly / "validation-report.json"
    by_stack: dict[str, list[str]] = {}
    if not report_file.exists():
        return by_stack
    report = json.loads(report_file.read_text())
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                stack = construct["constructPath"].split("/")[0]
                by_stack.setdefault(stack, []).append(
                    f"{violation['ruleName']} at {construct['constructPath']}"
                )
    return by_stack


def review(assembly: Path, *, checkov: bool = True) -> list[StackReview]:
    """Review every stack of ``assembly``; ``checkov=False`` leaves checkov out (the stacks
    then fail the review: a quicker look at the other checkers only)."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    violations = nag_violations(assembly)
    stacks = {
        name: assembly / artifact["properties"]["templateFile"]
        for name, artifact in sorted(manifest.get("artifacts", {}).items())
        if artifact.get("type") == "aws:cloudformation:stack"
    }
    checkov_reports = review_checkov.scan(stacks) if checkov else {}
    reviews = []
    for name, template_file in stacks.items():
        template = json.loads(template_file.read_text())
        resources = Counter(r["Type"] for r in template.get("Resources", {}).values())
        findings = {checker.name: _run(checker, template) for checker in TEMPLATE_CHECKERS}
        reviews.append(
            StackReview(
                name=name,
                resources=resources,
                acknowledged=acknowledged_findings(template),
                lint_findings=findings.pop("cfn-lint", []),
                nag_findings=violations.get(name, []),
                nag_packs=nag_packs(template),
                findings=findings,
                checkov=checkov_reports.get(name),
            )
        )
    return reviews


def _run(checker: TemplateChecker, template: dict[str, Any]) -> list[str]:
    try:
        return checker.run(template)
    except ModuleNotFoundError as error:
        raise SystemExit(
            f"conveyor review: {checker.name} is not installed (no module {error.name!r}): "
            f"pip install 'conveyor[{checker.extra}]'"
        ) from None


def render(reviews: list[StackReview]) -> str:
    lines = []
    for item in reviews:
        total = sum(item.resources.values())
        lines.append(f"Stack {item.name}: {total} resources")
        for resource_type, count in sorted(item.resources.items()):
            lines.append(f"    {count:3d}  {resource_type}")
        if item.nag_packs:
            lines.append(
                f"  cdk-nag {', '.join(item.nag_packs)}: {len(item.nag_findings)} "
                f"unacknowledged, {len(item.acknowledged)} acknowledged"
            )
        else:
            lines.append(
                "  cdk-nag: NOT RUN on this stack (attach the review gates before synth: "
                "conveyor.review.attach_review(app))"
            )
        lines.extend(f"    UNACKNOWLEDGED {finding}" for finding in item.nag_findings)
        for logical_id, rule_id, reason in item.acknowledged:
            lines.append(f"    ack {rule_id} on {logical_id}: {reason}")
        for checker in TEMPLATE_CHECKERS:
            found = (
                item.lint_findings
                if checker.name == "cfn-lint"
                else item.findings.get(checker.name, [])
            )
            note = f" ({checker.note})" if checker.note else ""
            lines.append(f"  {checker.name}: {len(found)} findings{note}")
            lines.extend(f"    {finding}" for finding in found)
        lines.extend(review_checkov.render(item.checkov))
    verdict = "PASS" if reviews and all(r.ok for r in reviews) else "FAIL"
    lines.append(f"Review: {verdict} ({len(reviews)} stacks)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    assembly = Path(argv[1] if len(argv) > 1 else "cdk.out")
    reviews = review(assembly)
    print(render(reviews))
    return 0 if reviews and all(r.ok for r in reviews) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
