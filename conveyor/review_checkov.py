"""checkov on the synthesized templates: one checker of the review (``conveyor.review``).

checkov 3 pins its own dependencies exactly (boto3 1.35, packaging < 24, networkx < 2.7,
cachetools < 6), which cannot share an environment with moto, cfn-lint and the handlers'
boto3. ``make setup`` therefore installs it into its own tool environment
(``.venv-checkov``, pinned by ``constraints-checkov.txt``) and the review runs it as a
command: ``$CONVEYOR_CHECKOV`` if set, else that environment's ``checkov``, else one on PATH.

A finding is explained when the resource's ``Metadata.checkov.skip`` names the check with a
reason (see ``conveyor.constructs.checkov``); checkov then reports it SKIPPED with that
comment. Failed checks, and skips without a real reason, are unexplained: the review fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

CHECKOV_ENV: Final = "CONVEYOR_CHECKOV"
# The same bound as conveyor.constructs.checkov.MIN_REASON_LENGTH (this module stays free of
# CDK imports: the review runs on a cloud assembly alone).
MIN_REASON_LENGTH: Final = 40
_TOOL_VENV: Final = Path(__file__).resolve().parent.parent / ".venv-checkov" / "bin" / "checkov"
_TIMEOUT_S: Final = 600


@dataclass(frozen=True)
class CheckovFinding:
    check_id: str
    logical_id: str
    check_name: str
    comment: str = ""  # a skip's reason


@dataclass
class CheckovReport:
    """checkov's results for one template."""

    passed: int = 0
    failed: list[CheckovFinding] = field(default_factory=list)
    skipped: list[CheckovFinding] = field(default_factory=list)
    version: str = ""
    error: str | None = None  # checkov could not run: the report says nothing

    @property
    def unexplained(self) -> list[CheckovFinding]:
        weak = [s for s in self.skipped if len(s.comment.strip()) < MIN_REASON_LENGTH]
        return [*self.failed, *weak]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.unexplained


def checkov_command() -> list[str] | None:
    """How to run checkov here, or None when it is not installed."""
    configured = os.environ.get(CHECKOV_ENV)
    if configured:
        return [configured]
    if _TOOL_VENV.exists():
        return [str(_TOOL_VENV)]
    found = shutil.which("checkov")
    return [found] if found else None


def _finding(result: dict[str, Any]) -> CheckovFinding:
    resource = str(result.get("resource", ""))
    logical_id = resource.split(".", 1)[1] if "." in resource else resource
    check_result = result.get("check_result") or {}
    return CheckovFinding(
        check_id=str(result.get("check_id", "")),
        logical_id=logical_id,
        check_name=str(result.get("check_name", "")),
        comment=str(check_result.get("suppress_comment") or ""),
    )


def scan(templates: Mapping[str, Path]) -> dict[str, CheckovReport]:
    """checkov's report for each named template file, from one checkov run."""
    if not templates:
        return {}
    command = checkov_command()
    if command is None:
        missing = f"checkov is not installed (make setup, or set {CHECKOV_ENV})"
        return {name: CheckovReport(error=missing) for name in templates}
    files = {str(path.resolve()): name for name, path in templates.items()}
    args = [*command, "--framework", "cloudformation", "--output", "json", "--soft-fail"]
    # --skip-download: no call to Prisma Cloud for guidelines (the review works offline).
    args += ["--skip-download", "--compact"]
    for path in files:
        args += ["--file", path]
    try:
        completed = subprocess.run(  # noqa: S603 - our own tool, our own files
            args, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
        )
        output: Any = json.loads(completed.stdout) if completed.stdout.strip() else []
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as error:
        return {name: CheckovReport(error=f"checkov failed: {error}") for name in templates}
    if completed.returncode != 0:
        detail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {name: CheckovReport(error=f"checkov failed: {detail}") for name in templates}
    reports = {name: CheckovReport() for name in templates}
    for block in output if isinstance(output, list) else [output]:
        version = str(block.get("summary", {}).get("checkov_version", ""))
        results = block.get("results", {})
        for kind in ("passed_checks", "failed_checks", "skipped_checks"):
            for result in results.get(kind, []):
                path = str(Path(str(result.get("file_abs_path", ""))).resolve())
                name = files.get(path)
                if name is None:
                    continue
                report = reports[name]
                report.version = version
                if kind == "passed_checks":
                    report.passed += 1
                elif kind == "failed_checks":
                    report.failed.append(_finding(result))
                else:
                    report.skipped.append(_finding(result))
    return reports


def scan_template(template: Mapping[str, Any]) -> CheckovReport:
    """checkov's report for one template (written to a temporary file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.json"
        path.write_text(json.dumps(template))
        return scan({"template": path})["template"]


def render(report: CheckovReport | None) -> list[str]:
    """The review summary's checkov lines for one stack."""
    if report is None:
        return ["  checkov: NOT RUN on this stack"]
    if report.error is not None:
        return [f"  checkov: NOT RUN ({report.error})"]
    explained = len(report.skipped) - (len(report.unexplained) - len(report.failed))
    lines = [
        f"  checkov {report.version}: {report.passed} passed, "
        f"{len(report.unexplained)} unexplained, {explained} skipped with a reason"
    ]
    lines += [
        f"    UNEXPLAINED {f.check_id} on {f.logical_id}: {f.check_name}" for f in report.failed
    ]
    for skip in report.skipped:
        if len(skip.comment.strip()) < MIN_REASON_LENGTH:
            lines.append(f"    UNEXPLAINED skip {skip.check_id} on {skip.logical_id} (no reason)")
        else:
            lines.append(f"    skip {skip.check_id} on {skip.logical_id}: {skip.comment}")
    return lines
