"""Conveyor as a library in your own CDK app: the README's example (examples/my_app, a
cdk.json without any feature flag) synthesizes with the review gates, passes the review, and
runs in the sandbox on its own assembly; a user's stack never gets the project's demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import moto
import pytest

from conveyor.review import review
from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import REGION
from conveyor.sandbox.runtime import Runtime
from conveyor.sandbox.scenarios import run_all
from tests.conftest import ROOT
from tests.support.aws import fake_aws_env

EXAMPLE = ROOT / "examples" / "my_app"


@pytest.fixture(scope="module")
def example_assembly(tmp_path_factory) -> Path:
    """``python3 -P app.py`` in examples/my_app, as its cdk.json runs it (no context)."""
    outdir = tmp_path_factory.mktemp("my_app.out")
    env = {**os.environ, "CDK_OUTDIR": str(outdir)}
    done = subprocess.run(
        [sys.executable, "-P", "app.py"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return outdir


def test_the_example_has_no_feature_flags_and_passes_the_review(example_assembly):
    import json

    assert "context" not in json.loads((EXAMPLE / "cdk.json").read_text())
    (item,) = review(example_assembly)
    assert item.name == "MyUploads"
    assert item.nag_packs == ("AwsSolutions",)
    assert item.ok, (item.nag_findings, item.lint_findings)


def test_the_example_runs_in_the_sandbox_on_its_own_assembly(example_assembly, monkeypatch):
    fake_aws_env(monkeypatch)
    records = []
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        deployment = deploy(example_assembly, session=session)
        runtime = Runtime(deployment, session=session, on_invocation=records.append)
        stack = deployment.stacks["MyUploads"]
        (bucket,) = [
            r.physical_id
            for lid, r in stack.resources.items()
            if r.type == "AWS::S3::Bucket" and lid.startswith("InboxBucket")
        ]
        photo = (ROOT / "examples" / "photo.jpg").read_bytes()
        session.client("s3", region_name=REGION).put_object(
            Bucket=bucket, Key="photo.jpg", Body=photo
        )
        report = runtime.pump()
        assert run_all(deployment, runtime, session, print_fn=lambda _: None) == []
        runtime.close()
    assert report.records_failed == 0
    logged = "".join(r.result.stdout for r in records)
    assert '"message": "upload received", "key": "photo.jpg"' in logged


def test_a_users_stack_named_like_a_topology_gets_no_demo(make_app, tmp_path, monkeypatch):
    """Demos follow the project's stacks (their conveyor:topology metadata), not names."""
    from aws_cdk import App

    sys.path.insert(0, str(EXAMPLE))
    monkeypatch.setattr(App, "synth", lambda self, **_: None)  # the example's own synth
    try:
        import importlib

        example = importlib.import_module("app")
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("app", None)
    monkeypatch.undo()
    app = make_app(outdir=str(tmp_path))
    example.UploadsStack(app, "Mine-ImagePipeline")
    app.synth()
    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        deployment = deploy(tmp_path, session=session)
        with Runtime(deployment, session=session) as runtime:
            assert run_all(deployment, runtime, session, print_fn=lambda _: None) == []
