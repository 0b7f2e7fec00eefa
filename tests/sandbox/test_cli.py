"""The ``conveyor`` CLI: trace in-process, the sandbox served on loopback, status and down."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conveyor import cli
from tests.support.aws import fake_aws_env


@pytest.fixture
def assembly(synthesized, monkeypatch, tmp_path) -> str:
    fake_aws_env(monkeypatch)
    monkeypatch.chdir(tmp_path)  # the state file lives in ./.conveyor
    return str(Path(synthesized["outdir"]))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_trace_prints_the_path_hop_by_hop_with_timings(assembly, capsys):
    assert cli.main(["trace", "PaymentsRouting", "--assembly", assembly]) == 0
    out = capsys.readouterr().out
    assert "LOCAL SANDBOX" in out
    assert " ms  invoke" in out
    assert "✓ review invoked for 6000 only" in out


def test_trace_rejects_an_unknown_topology(assembly, capsys):
    assert cli.main(["trace", "Nope", "--assembly", assembly]) == 2
    assert "unknown topology" in capsys.readouterr().out


def test_sandbox_up_once_serves_on_loopback_deploys_and_runs_every_demo(assembly, capsys):
    port = free_port()
    assert cli.main(["sandbox", "up", "--once", "--port", str(port), "--assembly", assembly]) == 0
    out = capsys.readouterr().out
    assert f"into http://localhost:{port}" in out
    assert "Scenarios: 58 passed, 0 failed" in out
    assert not Path(".conveyor/sandbox.json").exists()


def test_status_and_down_without_a_running_sandbox(assembly, capsys):
    assert cli.main(["sandbox", "status"]) == 1
    assert cli.main(["sandbox", "down"]) == 0
    assert "No sandbox is running" in capsys.readouterr().out


def test_trace_sends_a_given_event_and_reports_what_happened(assembly, capsys, tmp_path):
    event = tmp_path / "facture.json"
    event.write_text(
        '{"source": "app.paiement", "detail-type": "facture",'
        ' "detail": {"factureId": "f-9", "montant": 7000, "devise": "EUR", "client": "c-1"}}'
    )
    assert (
        cli.main(["trace", "PaymentsRouting", "--assembly", assembly, "--event", str(event)]) == 0
    )
    out = capsys.readouterr().out
    assert "HighValueReview" in out
    assert "1 invocations, 1 records processed, 0 failed" in out


def test_trace_of_the_telemetry_stream_shows_records_by_shard(assembly, capsys):
    """Each receive line of the shard poller names its shard and its sequence range."""
    assert cli.main(["trace", "Telemetry", "--assembly", assembly]) == 0
    out = capsys.readouterr().out
    receives = [
        line for line in out.splitlines() if " ms  receive" in line and "route_kind=kinesis" in line
    ]
    assert receives
    assert all("shard=shardId-" in line and "first_sequence=" in line for line in receives)
    assert "on-failure" in out
    assert "condition=RetryAttemptsExhausted" in out
