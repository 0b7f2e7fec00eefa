"""Review summary of a synthesized cloud assembly: ``python -m conveyor.review cdk.out``.

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
    lint_findings: list[str]
    nag_findings: list[str] = field(default_factory=list)
    # The cdk-nag packs that validated this stack (empty: cdk-nag never saw it).
    nag_packs: tuple[str, ...] = ()
    # checkov's results (None: not run, which fails the review).
    checkov: review_checkov.CheckovReport | None = None

    @property
    def ok(self) -> bool:
        checkov_ok = self.checkov is not None and self.checkov.ok
        return (
            bool(self.nag_packs) and not self.lint_findings and not self.nag_findings and checkov_ok
        )


def lint_template(template: dict[str, Any]) -> list[str]:
    """cfn-lint matches for one template (minus the ignored noise), one line each."""
    from cfnlint.api import ManualArgs, lint  # a second or two to import: only when linting

    matches = lint(json.dumps(template), config=ManualArgs(ignore_checks=list(CFN_LINT_IGNORED)))
    return [f"{m.rule.id} {m.message} ({'/'.join(str(p) for p in m.path)})" for m in matches]


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
        reviews.append(
            StackReview(
                name=name,
                resources=resources,
                acknowledged=acknowledged_findings(template),
                lint_findings=lint_template(template),
                nag_findings=violations.get(name, []),
                nag_packs=nag_packs(template),
                checkov=checkov_reports.get(name),
            )
        )
    return reviews


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
                "  cdk-nag: NOT RUN on this stack (attach the review plugins: "
                "conveyor.topologies.attach_review_plugins)"
            )
        lines.extend(f"    UNACKNOWLEDGED {finding}" for finding in item.nag_findings)
        for logical_id, rule_id, reason in item.acknowledged:
            lines.append(f"    ack {rule_id} on {logical_id}: {reason}")
        ignored = ", ".join(CFN_LINT_IGNORED)
        lines.append(f"  cfn-lint: {len(item.lint_findings)} findings (ignored: {ignored})")
        lines.extend(f"    {finding}" for finding in item.lint_findings)
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
