"""The ``conveyor`` CLI: trace in-process, the sandbox served on loopback, status and down."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from conveyor import cli
from tests.support.aws import fake_aws_env


@pytest.fixture
def assembly(synthesized, monkeypatch, tmp_path) -> str:
    fake_aws_env(monkeypatch)
    monkeypatch.chdir(tmp_path)  # the log lives in ./.conveyor
    monkeypatch.setenv("CONVEYOR_STATE_DIR", str(tmp_path / "state"))  # running sandboxes
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


def test_trace_rejects_an_unknown_stack_in_one_line(assembly, capsys):
    assert cli.main(["trace", "Nope", "--assembly", assembly]) == 2
    err = capsys.readouterr().err
    assert err.startswith("conveyor trace: no stack named 'Nope'")
    assert len(err.strip().splitlines()) == 1


def test_sandbox_up_once_serves_on_loopback_deploys_and_runs_every_demo(assembly, capsys):
    port = free_port()
    assert cli.main(["sandbox", "up", "--once", "--port", str(port), "--assembly", assembly]) == 0
    out = capsys.readouterr().out
    assert f"into http://localhost:{port}" in out
    assert "Scenarios: 83 passed, 0 failed" in out
    assert "(region us-east-1)" in out
    assert not list((Path("state")).glob("sandbox-*.json"))


def test_status_and_down_without_a_running_sandbox_say_where_they_looked(assembly, capsys):
    assert cli.main(["sandbox", "status"]) == 1
    assert cli.main(["sandbox", "down"]) == 0
    out = capsys.readouterr().out
    assert "No sandbox is running" in out
    assert f"looked in {Path('state').resolve()}" in out


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


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_for(predicate: Any, what: str) -> None:
    """Waits for the background sandbox (bounded; not a timing assertion)."""
    for _ in range(600):
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def test_a_detached_sandbox_serves_the_order_api_logs_each_invocation_and_stops(
    assembly, capsys, monkeypatch, tmp_path
):
    """``curl`` of the order API: 202 for a valid order, 400 with the validation errors for an
    invalid one; the invocation is in the sandbox log, in CloudWatch Logs and in ``conveyor
    logs``; ``status`` works from any directory; ``down`` returns with the port free."""
    port = free_port()
    command = ["sandbox", "up", "--detach", "--no-demo", "--port", str(port)]
    assert cli.main([*command, "--assembly", assembly]) == 0
    try:
        out = capsys.readouterr().out
        # the order pipeline's output is the /orders resource (other stacks have an ApiUrl too)
        (url,) = [u for u in re.findall(r"ApiUrl \(local\) = (\S+)", out) if u.endswith("/orders")]
        assert url.startswith(f"http://localhost:{port}/restapis/")
        order = {
            "orderId": "o-live",
            "customerId": "c-live",
            "event": "created",
            "items": [{"sku": "A", "quantity": 1, "unitPrice": 3.5}],
            "total": 3.5,
            "currency": "EUR",
        }
        status, body = _http("POST", url, order)
        assert (status, body["status"]) == (202, "accepted")
        status, body = _http("POST", url, {"orderId": "o-live", "event": "lost"})
        assert status == 400
        assert "'customerId' is a required property" in body["errors"]

        log = Path(".conveyor/sandbox.log")

        def invocations() -> list[str]:
            lines = log.read_text().splitlines()
            return [x for x in lines if " → " in x and "OrderPipeline-OrderEvents" in x]

        _wait_for(invocations, "the order's invocation logged")
        (line,) = invocations()
        assert "sqs " in line
        assert "1 records, ok" in line
        assert "▶" not in log.read_text()  # --no-demo: no demo ran

        logs = boto3.client("logs", endpoint_url=f"http://localhost:{port}")
        state = json.loads(next((tmp_path / "state").glob("sandbox-*.json")).read_text())
        # The function's LoggingConfig.LogGroup (its own log group), as Lambda writes there.
        (group,) = [g for n, g in state["functions"].items() if "OrderPipeline-OrderEvents" in n]
        assert group in {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
        messages = [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]]
        assert messages[0].startswith("START RequestId: ")
        assert messages[-1].startswith("REPORT RequestId: ")
        assert any('"order_id":"o-live"' in m or "o-live" in m for m in messages)

        capsys.readouterr()
        assert cli.main(["logs", "OrderPipeline-OrderEventsFunction"]) == 0
        assert "START RequestId: " in capsys.readouterr().out

        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        assert cli.main(["sandbox", "status"]) == 0
        assert url in capsys.readouterr().out
    finally:
        assert cli.main(["sandbox", "down"]) == 0
    assert "is free" in capsys.readouterr().out
    with socket.socket() as probe:  # free: down returned after the server let it go
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_up_on_a_busy_port_fails_at_once_naming_its_owner(assembly, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for extra in ([], ["--detach"]):
            command = ["sandbox", "up", "--once", "--port", str(port), *extra]
            assert cli.main([*command, "--assembly", assembly]) == 1
            out = capsys.readouterr().out
            assert f"port {port} is already in use by pid {os.getpid()}" in out
            assert "Sandbox running" not in out


def test_trace_of_a_missing_event_file_is_one_line(assembly, capsys):
    assert cli.main(["trace", "OrderPipeline", "--assembly", assembly, "--event", "no.json"]) == 2
    assert capsys.readouterr().err.strip() == "conveyor trace: no event file no.json"


def test_trace_of_an_invalid_order_through_the_api_shows_the_400(assembly, capsys, tmp_path):
    event = tmp_path / "bad.json"
    event.write_text('{"body": {"orderId": "o 1", "event": "lost"}}')
    assert cli.main(["trace", "OrderPipeline", "--assembly", assembly, "--event", str(event)]) == 0
    out = capsys.readouterr().out
    assert "POST /orders → 400" in out
    assert "0 invocations" in out


def test_trace_of_any_stack_counts_a_handler_dead_letter_move(assembly, capsys, tmp_path):
    """A malformed message on the FIFO queue: the handler itself sends it to the DLQ."""
    event = tmp_path / "poison.json"
    event.write_text('{"queue": "OrderEventsQueue", "body": "{not json", "groupId": "c-1"}')
    stack = "Conveyor-test-OrderPipeline"
    assert cli.main(["trace", stack, "--assembly", assembly, "--event", str(event)]) == 0
    out = capsys.readouterr().out
    assert "1 moved to a DLQ (1 by the handler)" in out
    assert "ended in OrderEventsDeadLetterQueue" in out
    assert "body is not JSON" in out


def test_help_has_no_restructuredtext_markup(capsys):
    with pytest.raises(SystemExit):
        cli.main(["-h"])
    out = capsys.readouterr().out
    assert "``" not in out
    assert "logs" in out


BLOCKED = (
    "boto3", "botocore", "moto", "airspeed", "jsonschema", "cfnlint",
    "aws_lambda_powertools", "PIL", "werkzeug",
)  # fmt: skip


def _core_install(*argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process where the extras' modules cannot be imported."""
    code = (
        "import sys\n"
        f"BLOCKED = {BLOCKED!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from conveyor.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-P", "-c", code, *argv], capture_output=True, text=True, check=False
    )


def test_the_cli_starts_with_the_core_install_and_names_the_extra_a_command_needs():
    assert _core_install("-h").returncode == 0
    traced = _core_install("trace", "OrderPipeline")
    assert traced.returncode == 2
    assert "pip install 'conveyor[sandbox]'" in traced.stderr
