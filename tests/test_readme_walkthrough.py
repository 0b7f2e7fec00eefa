"""The README's sandbox walkthrough, typed literally: its marked command block runs against a
live sandbox (AWS CLI commands through awscli), so the walkthrough cannot rot.

Two substitutions only, both of what the test cannot share with a developer's machine: the
port (a free one, not 4566) and the stack prefix of the test assembly (``Conveyor-test-``,
where ``make synth`` writes ``Conveyor-sandbox-``). ``make`` lines are the test's own start.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess

import pytest

from conveyor import cli
from tests.conftest import ROOT
from tests.support.aws import fake_aws_env

MARKER = "<!-- walkthrough: tests/test_readme_walkthrough.py runs this block -->"


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    after = readme.split(MARKER, 1)[1]
    match = re.match(r"\s*```bash\n(.*?)\n```", after, flags=re.DOTALL)
    assert match is not None, "the marked block must be a ```bash block"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "aws").exists(), reason="needs make setup")
def test_the_readme_sandbox_walkthrough_runs_as_written(synthesized, monkeypatch, tmp_path):
    fake_aws_env(monkeypatch)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)  # the block exports them itself
    monkeypatch.setenv("CONVEYOR_STATE_DIR", str(tmp_path / "state"))
    work = tmp_path / "clone"  # what a fresh clone has after `make sandbox`
    work.mkdir()
    for name in (".venv", "examples"):
        (work / name).symlink_to(ROOT / name)
    (work / "cdk.out").symlink_to(synthesized["outdir"])
    monkeypatch.chdir(work)
    port = free_port()
    lines = [line for line in walkthrough().splitlines() if not line.startswith("make ")]
    script = "\n".join(lines).replace("localhost:4566", f"localhost:{port}")
    script = script.replace("Conveyor-sandbox-", "Conveyor-test-")
    started = cli.main(["sandbox", "up", "--detach", "--port", str(port)])
    assert started == 0
    try:
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script],
            cwd=work,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        cli.main(["sandbox", "down"])
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    out = done.stdout
    assert re.search(r"thumbnails/\d+/photo\.jpg", out)
    assert "START RequestId: " in out
    assert '"status": "accepted"' in out
    assert "Invalid request body" in out
    assert "ReplayArn" in out
    assert "HighValueReview" in out
    assert "1 moved to a DLQ (1 by the handler)" in out
