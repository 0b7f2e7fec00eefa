"""``conveyor`` — the local sandbox from the command line.

    conveyor sandbox up [--once] [--detach] [--no-demo] [--port 4566] [--assembly cdk.out]
    conveyor sandbox status
    conveyor sandbox down
    conveyor logs FUNCTION [--follow]
    conveyor trace STACK [--assembly cdk.out] [--event FILE] [--correlation-id ID | --order ORDER]
    conveyor diagram [STACK…] [--assembly cdk.out] [--format mermaid|svg|png|dot]
    conveyor cost [STACK…] [--events 1000000] [--payload-kb 1] [--region eu-west-3]

``sandbox up`` starts a moto server on 127.0.0.1 (AWS CLI and SDKs can use it with
``--endpoint-url http://localhost:4566``), deploys every synthesized stack into it, runs each
topology's demo scenario, then keeps delivering messages to the handlers until stopped
(``--once``: exit after the scenarios, non-zero if one failed). It serves region us-east-1,
and the assembly's REST APIs at ``/restapis/<id>/<stage>/_user_request_/<path>``; every
invocation is logged to ``.conveyor/sandbox.log`` and to CloudWatch Logs (``conveyor logs``).
``trace`` deploys in-process and prints a topology's demo, or an event file sent into any
stack, hop by hop with timings.

This is a **local sandbox**, not AWS: see the README's fidelity table for what it emulates.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOG_FILE = Path(".conveyor") / "sandbox.log"
BANNER = "Conveyor LOCAL SANDBOX (moto + in-process handlers) — nothing is deployed to AWS"
SANDBOX_EXTRA = "pip install 'conveyor[sandbox]'"


def state_dir() -> Path:
    """Where running sandboxes are recorded (one file per port), whatever the current
    directory: ``$CONVEYOR_STATE_DIR``, else ``~/.conveyor``."""
    configured = os.environ.get("CONVEYOR_STATE_DIR")
    return Path(configured) if configured else Path.home() / ".conveyor"


def state_file(port: int) -> Path:
    return state_dir() / f"sandbox-{port}.json"


def _session() -> Any:
    import boto3

    from conveyor.sandbox.model import REGION

    return boto3.session.Session(
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",  # noqa: S106 - moto's dummy credentials
        region_name=REGION,
    )


def _print_deployment(deployment: Any) -> None:
    from conveyor.sandbox.deployer import report

    print(report(deployment))


def _run_scenarios(deployment: Any, runtime: Any, session: Any, endpoint: str | None) -> bool:
    from conveyor.sandbox.scenarios import run_all

    results = run_all(deployment, runtime, session, endpoint)
    failed = [(t, c.name) for t, checks in results for c in checks if not c.ok]
    total = sum(len(checks) for _, checks in results)
    print(f"Scenarios: {total - len(failed)} passed, {len(failed)} failed")
    return not failed


def sandbox_up(args: argparse.Namespace) -> int:
    from conveyor.sandbox.server import port_is_free, port_owner

    if not port_is_free(args.port):
        return _port_busy(args.port, port_owner(args.port))
    if args.detach:
        return _detach(args)
    from conveyor.sandbox.apis import RestApis
    from conveyor.sandbox.deployer import deploy
    from conveyor.sandbox.logs import SandboxLog
    from conveyor.sandbox.model import REGION
    from conveyor.sandbox.runtime import Runtime
    from conveyor.sandbox.server import PortBusy, SandboxServer

    print(BANNER)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request lines on the console
    # moto's Step Functions interpreter calls the other services on MOTO_PORT.
    os.environ["MOTO_PORT"] = str(args.port)
    try:
        server = SandboxServer(args.port).start()
    except PortBusy as busy:
        return _port_busy(busy.port, busy.owner)
    endpoint = f"http://localhost:{args.port}"
    plan = _plan_brokers(Path(args.assembly), install=not args.no_broker_install)
    try:
        for line in plan.lines():
            print(line)
        session = _session()
        started = time.perf_counter()
        deployment = deploy(
            Path(args.assembly),
            session=session,
            endpoint_url=endpoint,
            stack_names=plan.deployable,
            brokers=plan.brokers,
        )
        print(
            f"Deployed {len(deployment.stacks)} stacks into {endpoint} (region {REGION}) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        _print_deployment(deployment)
        log = SandboxLog(session=session, endpoint_url=endpoint, path=LOG_FILE)
        runtime = Runtime(
            deployment,
            session=session,
            endpoint_url=endpoint,
            on_invocation=log.invocation,
            on_event=log.trace,
        )
        apis = RestApis(deployment, session=session, endpoint_url=endpoint, runtime=runtime)
        server.serve_apis(apis)
        ok = _run_scenarios(deployment, runtime, session, endpoint) if not args.no_demo else True
        if plan.blocked and os.environ.get("CI", "").lower() == "true":
            # In CI a topology that could not be deployed is a failure, never a skip.
            print(
                f"FAILED: {len(plan.blocked)} topologies not deployed (CI=true): "
                + ", ".join(plan.blocked)
            )
            ok = False
        if args.once:
            runtime.close()
            return 0 if ok else 1
        _write_state(args.port, deployment, apis, endpoint)
        for line in _api_lines(apis, endpoint):
            print(line)
        print(
            f"Serving on {endpoint} (region {REGION}) — e.g. aws --endpoint-url {endpoint} "
            f"--region {REGION} s3 ls; Ctrl-C stops."
        )
        sys.stdout.flush()
        stop = {"now": False}

        def _stop(*_: Any) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop["now"]:
            runtime.pump()
            time.sleep(0.5)
        return 0
    finally:
        server.stop()  # the port is free before the state file goes
        state_file(args.port).unlink(missing_ok=True)
        plan.brokers.stop()


def _plan_brokers(assembly: Path, *, install: bool) -> Any:
    """Start the local brokers the assembly's stacks need (installing Debian's RabbitMQ when
    ``install`` and root); the stacks whose broker cannot run are not deployed, and said."""
    from conveyor.sandbox.assembly import read_assembly
    from conveyor.sandbox.brokers import plan_brokers

    stacks = read_assembly(assembly).stacks
    return plan_brokers({s.name: s.template for s in stacks}, install=install)


def _port_busy(port: int, owner: str | None) -> int:
    print(
        f"conveyor sandbox up: port {port} is already in use by {owner or 'another process'}; "
        f"stop it (conveyor sandbox down, if it is a sandbox) or pass --port"
    )
    return 1


DETACH_WAIT_S = 300.0  # how long `up --detach` waits for the sandbox to serve


def _detach(args: argparse.Namespace) -> int:
    LOG_FILE.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-P", "-m", "conveyor.cli", "sandbox", "up"]
    command += ["--port", str(args.port), "--assembly", str(args.assembly)]
    command += ["--no-demo"] if args.no_demo else []
    state = state_file(args.port)
    LOG_FILE.write_text("")  # the server appends to it too: both streams open in append mode
    with LOG_FILE.open("a") as log:
        process = subprocess.Popen(  # noqa: S603
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    # Ten stacks, two brokers to boot and the demos: minutes on a loaded 2-core machine.
    deadline = time.monotonic() + DETACH_WAIT_S
    while time.monotonic() < deadline:
        if _state_pid(state) == process.pid:  # this sandbox, never another one's state
            print(f"Sandbox running (pid {process.pid}); log: {LOG_FILE.resolve()}")
            return sandbox_status(args)
        if process.poll() is not None:
            print(LOG_FILE.read_text())
            return 1
        time.sleep(0.1)
    process.terminate()
    print(
        f"the sandbox did not start within {DETACH_WAIT_S:.0f} s (stopped it); "
        f"see {LOG_FILE.resolve()}"
    )
    return 1


def _state_pid(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def _api_lines(apis: Any, endpoint: str) -> list[str]:
    lines = []
    for api in apis.apis.values():
        for stage in sorted(api.stages):
            lines.append(f"REST API {api.stack}/{api.name}: {api.url(endpoint, stage)}")
            for value in api.keys.get(stage, {}):
                lines.append(f"    API key (x-api-key): {value}")
    return lines


def _write_state(port: int, deployment: Any, apis: Any, endpoint: str) -> None:
    path = state_file(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    stacks = {}
    for name, stack in deployment.stacks.items():
        outputs = dict(stack.outputs)
        for key, value in stack.outputs.items():
            local = apis.local_url(value, endpoint)
            if local is not None:
                outputs[f"{key} (local)"] = local
        stacks[name] = outputs
    path.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "endpoint": endpoint,
                "region": deployment.region,
                "cwd": str(Path.cwd()),
                "log": str(LOG_FILE.resolve()),
                "apis": _api_lines(apis, endpoint),
                "stacks": stacks,
                "functions": {
                    spec.name: spec.log_group or f"/aws/lambda/{spec.name}"
                    for stack in deployment.stacks.values()
                    for spec in stack.functions.values()
                },
            },
            indent=2,
        )
    )


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child its parent has not reaped)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child (a test): reap it
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal answered
    return state != "Z"


def _running() -> list[tuple[Path, dict[str, Any]]]:
    """The recorded sandboxes whose process is alive (stale records are removed)."""
    found = []
    for path in sorted(state_dir().glob("sandbox-*.json")):
        try:
            state = json.loads(path.read_text())
            alive = _alive(int(state["pid"]))
        except (OSError, ValueError, KeyError):
            alive = False
        if not alive:
            path.unlink(missing_ok=True)
            continue
        found.append((path, state))
    return found


def sandbox_status(args: argparse.Namespace) -> int:
    running = _running()
    if not running:
        print(
            f"No sandbox is running (looked in {state_dir()}; "
            "start one with: conveyor sandbox up --detach)"
        )
        return 1
    print(BANNER)
    for _, state in running:
        print(
            f"Running: pid {state['pid']}, endpoint {state['endpoint']}, region "
            f"{state.get('region', 'us-east-1')}, log {state.get('log', '?')}"
        )
        for line in state.get("apis", []):
            print(f"  {line}")
        for stack, outputs in state["stacks"].items():
            print(f"  {stack}")
            for key, value in outputs.items():
                print(f"    {key} = {value}")
    return 0


def sandbox_output(args: argparse.Namespace) -> int:
    """One output of the running sandbox, for shell scripts: ``$(conveyor sandbox output
    ImagePipeline UploadBucketName)``. STACK: a stack name or its last part."""
    running = _running()
    if not running:
        raise ValueError(f"no sandbox is running (looked in {state_dir()})")
    stacks: dict[str, dict[str, str]] = running[0][1]["stacks"]
    names = [n for n in stacks if n == args.stack] or [
        n for n in stacks if n.endswith(f"-{args.stack}")
    ]
    if len(names) != 1:
        raise ValueError(f"{len(names)} stacks match {args.stack!r} (stacks: {', '.join(stacks)})")
    outputs = stacks[names[0]]
    if args.key not in outputs:
        raise ValueError(f"{names[0]} has no output {args.key!r} (outputs: {', '.join(outputs)})")
    print(outputs[args.key])
    return 0


def sandbox_down(args: argparse.Namespace) -> int:
    from conveyor.sandbox.server import port_is_free

    running = _running()
    if not running:
        print(f"No sandbox is running (looked in {state_dir()})")
        return 0
    status = 0
    for path, state in running:
        pid, port = int(state["pid"]), int(state["endpoint"].rsplit(":", 1)[1])
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            path.unlink(missing_ok=True)
            continue
        for _ in range(300):  # until the process is gone and its port free
            if not _alive(pid) and port_is_free(port):
                break
            time.sleep(0.1)
        else:
            print(f"Sandbox (pid {pid}) still running after 30 s: kill {pid}")
            status = 1
            continue
        path.unlink(missing_ok=True)
        print(f"Sandbox (pid {pid}) stopped; port {port} is free")
    return status


def trace(args: argparse.Namespace) -> int:
    from moto import mock_aws

    from conveyor.sandbox.assembly import read_assembly
    from conveyor.sandbox.deployer import deploy
    from conveyor.sandbox.runtime import Runtime
    from conveyor.sandbox.scenarios import SCENARIOS, topology_of

    event = _read_event(Path(args.event)) if args.event else None
    stacks = read_assembly(Path(args.assembly)).stacks
    project = {t: s.name for s in stacks if (t := topology_of(s.template))}
    names = [s.name for s in stacks if s.name == args.topology] or (
        [project[args.topology]]
        if args.topology in project
        else [s.name for s in stacks if s.name.endswith(f"-{args.topology}")]
    )
    if len(names) != 1:
        found = "no stack" if not names else f"{len(names)} stacks ({', '.join(names)})"
        raise ValueError(
            f"{found} named {args.topology!r} in {args.assembly}; stacks: "
            + ", ".join(s.name for s in stacks)
        )
    (name,) = names
    scenario_type = next(
        (s for s in SCENARIOS if project.get(s.topology) == name and s.topology == args.topology),
        None,
    )
    if scenario_type is None and event is None:
        raise ValueError(
            f"{name} has no demo (demos: {', '.join(project) or 'none'}): pass --event FILE"
        )
    print(BANNER)
    from conveyor.sandbox.brokers import plan_brokers

    selected = [stack for stack in stacks if stack.name in names]
    plan = plan_brokers({s.name: s.template for s in selected}, install=True)
    for line in plan.lines():
        print(line)
    if plan.blocked:
        plan.brokers.stop()
        return 1
    with plan.brokers.running(), mock_aws():
        session = _session()
        deployment = deploy(
            Path(args.assembly), session=session, stack_names=plan.deployable, brokers=plan.brokers
        )
        started = time.perf_counter()
        metrics: dict[str, float] = {}
        follow = bool(args.correlation_id or args.order)

        def show(trace_event: Any) -> None:
            if follow:  # only the correlated log lines, at the end
                return
            elapsed = (time.perf_counter() - started) * 1000
            print(f"  {elapsed:8.1f} ms  {_describe(trace_event)}")

        def show_invocation(record: Any) -> None:
            if follow:
                return
            output = (record.result.stdout + record.result.stderr).splitlines()
            for line in output:
                if line.strip() and '"_aws"' not in line:
                    print(f"               │ {line}")
            response = json.dumps(record.result.response)
            print(f"               └ {record.outcome}; returned {response[:200]}")
            for blob in record.result.metrics:
                for definition in blob["_aws"].get("CloudWatchMetrics", []):
                    for metric in definition.get("Metrics", []):
                        value = blob.get(metric.get("Name"))
                        if isinstance(value, int | float):
                            metrics[metric["Name"]] = metrics.get(metric["Name"], 0) + value

        from conveyor.sandbox.choreography import CorrelationTrace

        correlated = CorrelationTrace(forward=show)
        runtime = Runtime(
            deployment, session=session, on_event=correlated, on_invocation=show_invocation
        )
        with runtime:
            if event is not None:
                status = _trace_event(args, deployment, name, runtime, session, event, metrics)
                return _print_correlated(args, None, correlated) or status
            assert scenario_type is not None
            scenario = scenario_type(deployment, runtime, session)
            print(f"▶ {scenario.topology}: {scenario.description}")
            checks = scenario.run()
            for line in getattr(scenario, "trace_lines", []):  # e.g. Step Functions histories
                print(line)
            if follow and _print_correlated(args, scenario, correlated):
                return 2
    for item in checks:
        print(
            f"   {'✓' if item.ok else '✗'} {item.name}"
            + ("" if item.ok else f" (expected {item.expected}, observed {item.observed})")
        )
    return 0 if all(c.ok for c in checks) else 1


def _read_event(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no event file {path}") from None
    except ValueError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None


def _trace_event(
    args: argparse.Namespace,
    deployment: Any,
    name: str,
    runtime: Any,
    session: Any,
    event: Any,
    metrics: dict[str, float],
) -> int:
    from conveyor.sandbox.apis import RestApis
    from conveyor.sandbox.model import REGION
    from conveyor.sandbox.scenarios import SCENARIOS, topology_of
    from conveyor.sandbox.sends import (
        dead_letter_queues,
        dead_letter_reasons,
        entry_kind,
        queue_depth,
        send,
    )

    stack = deployment.stacks[name]

    def client(service: str) -> Any:
        return session.client(service, region_name=REGION)

    sqs = client("sqs")
    dlqs = dead_letter_queues(stack)
    before = {lid: queue_depth(sqs, url) for lid, url in dlqs.items()}
    topology = topology_of(stack.template)
    scenario_type = next((s for s in SCENARIOS if s.topology == topology), None)
    if isinstance(event, dict) and entry_kind(event) is None and scenario_type is not None:
        answer = scenario_type(deployment, runtime, session).send(event)
        sent = f"the event in {args.event}, through the {topology} demo's entry point"
        sent += f": {answer}" if answer else ""
    elif isinstance(event, dict):
        apis = RestApis(deployment, session=session, runtime=runtime)
        folder = Path(args.event).parent
        sent = send(stack, event, client=client, runtime=runtime, apis=apis, base_dir=folder)
    else:
        raise ValueError(f"{args.event}: the event must be a JSON object")
    print(f"▶ {name}: {sent}")
    report = runtime.pump()
    added = {lid: queue_depth(sqs, url) - before[lid] for lid, url in dlqs.items()}
    in_dlqs = sum(max(0, n) for n in added.values())
    by_handler = max(0, in_dlqs - report.moved_to_dlq - report.on_failure)
    print(
        f"   {report.invocations} invocations, {report.records_processed} records "
        f"processed, {report.records_failed} failed, {report.moved_to_dlq + by_handler} moved to "
        f"a DLQ ({by_handler} by the handler), {report.on_failure} sent to on-failure queues, "
        f"{report.dropped} dropped"
    )
    for lid, count in added.items():
        if count > 0:
            reasons = dead_letter_reasons(sqs, dlqs[lid])
            print(f"   ended in {lid}: {count} message(s); " + "; ".join(reasons[-count:]))
    if metrics:
        print("   metrics: " + ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())))
    return 0


def _print_correlated(args: argparse.Namespace, scenario: Any, correlated: Any) -> int:
    """Print the log lines of one correlation id (``--correlation-id``, or the one of
    ``--order``); 0, or 2 when there is nothing to follow."""
    from conveyor.sandbox.choreography import render

    correlation_id = args.correlation_id
    if args.order:
        correlation_id = getattr(scenario, "correlation_ids", {}).get(args.order)
        if correlation_id is None:
            print(f"no order {args.order!r} was placed by this run")
            return 2
    if not correlation_id:
        return 0
    lines = correlated.lines(correlation_id)
    if not lines:
        known = ", ".join(correlated.correlation_ids()[:10]) or "none"
        print(f"no log line carries correlation id {correlation_id!r} (seen: {known})")
        return 2
    for line in render(lines, correlation_id):
        print(line)
    return 0


def _describe(event: Any) -> str:
    describe = getattr(event, "describe", None)
    return str(describe()) if callable(describe) else str(event)


# ---------------------------------------------------------------------------- diagram and cost
# (issue #16) Both read a cloud assembly or a template file; neither needs AWS nor moto.


def _readable_errors(handler: Any) -> Any:
    """An unknown stack or a missing assembly is a message and exit code 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except (KeyError, FileNotFoundError) as error:
            print(f"conveyor {args.command}: {error.args[0] if error.args else error}")
            return 2

    return run


def diagram(args: argparse.Namespace) -> int:
    from conveyor import diagrams
    from conveyor.templates import load_stacks

    assembly = Path(args.assembly)
    if args.update_readme:
        readme = Path(args.update_readme)
        stacks = load_stacks(assembly)

        def diagram_for(name: str) -> str:
            topology = name.rsplit("-", 1)[-1]
            match = [s for s in stacks if s.name == name] or [
                s for s in stacks if s.name.rsplit("-", 1)[-1] == topology
            ]
            if not match:
                raise KeyError(f"{readme} draws {name!r}, which is not in {assembly}")
            return diagrams.to_mermaid(diagrams.build_graph(match[0], plumbing=args.plumbing))

        before = readme.read_text()
        after = diagrams.update_readme(before, diagram_for)
        blocks = len(diagrams.readme_blocks(before))
        if args.check:
            state = "stale" if after != before else "up to date"
            print(f"{readme}: {blocks} generated diagrams, {state}")
            return 1 if after != before else 0
        readme.write_text(after)
        print(
            f"{readme}: {blocks} generated diagrams {'updated' if after != before else 'unchanged'}"
        )
        return 0
    graphs = [
        diagrams.build_graph(stack, plumbing=args.plumbing)
        for stack in load_stacks(assembly, args.stacks)
    ]
    output = Path(args.output) if args.output else None
    if args.format == "png" and output is None:
        print("--format png writes files: give --output FILE.png (one stack) or a directory")
        return 2
    try:
        rendered = diagrams.write_outputs(graphs, args.format, output)
    except diagrams.GraphvizMissing as error:
        print(error)
        return 2
    if output is None:
        for (_name, data), graph in zip(rendered, graphs, strict=True):
            if args.format == "mermaid" and len(graphs) > 1:
                print(f"%% {graph.stack}")
            sys.stdout.write(data.decode())
    else:
        print("wrote " + ", ".join(name for name, _ in rendered) + f" to {output}")
    return 0


def cost(args: argparse.Namespace) -> int:
    from conveyor.cost import Assumptions, estimate, format_report, load_prices
    from conveyor.templates import load_stacks

    prices = load_prices(Path(args.prices) if args.prices else None)
    if args.refresh_prices:
        return _refresh_prices(prices, Path(args.refresh_prices))
    assumptions = Assumptions.from_args(args)
    for index, stack in enumerate(load_stacks(Path(args.assembly), args.stacks)):
        report = estimate(stack, prices, args.region, assumptions)
        text = format_report(report, output_format=args.format)
        sys.stdout.write(("\n" if index else "") + text + ("" if text.endswith("\n") else "\n"))
    return 0


def _refresh_prices(prices: Any, out: Path) -> int:
    import datetime

    from conveyor.cost import refresh_prices

    try:
        import boto3
    except ImportError:
        print("--refresh-prices needs boto3 (pip install boto3)")
        return 2
    session = boto3.session.Session()
    if session.get_credentials() is None:
        print("--refresh-prices needs AWS credentials (the Price List API is not anonymous)")
        return 2
    client = session.client("pricing", region_name="us-east-1")
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    table = refresh_prices(prices, sorted(prices.regions), client, today)
    out.write_text(json.dumps(table, indent=2) + "\n")
    for region, values in table["regions"].items():
        print(f"{region}: {len(values) - 1 - len(values['unverified'])} prices refreshed")
    print(f"wrote {out}; use it with --prices {out}")
    return 0


def add_diagram_and_cost(commands: Any) -> None:
    """The ``diagram`` and ``cost`` subcommands (parsers)."""
    from conveyor.cost import add_arguments

    drawing = commands.add_parser("diagram", help="draw stacks from their synthesized templates")
    drawing.add_argument(
        "stacks", nargs="*", help="stack names or topology suffixes (default: all)"
    )
    drawing.add_argument(
        "--assembly", default="cdk.out", help="cloud assembly dir or template file"
    )
    drawing.add_argument("--format", choices=["mermaid", "svg", "png", "dot"], default="mermaid")
    drawing.add_argument("--output", "-o", help="file (one stack) or directory for the output")
    drawing.add_argument(
        "--plumbing", action="store_true", help="also draw IAM, KMS, logs, policies and the like"
    )
    drawing.add_argument(
        "--update-readme",
        metavar="README",
        help="rewrite the README's `<!-- generated: conveyor diagram STACK -->` mermaid blocks",
    )
    drawing.add_argument("--check", action="store_true", help="with --update-readme: only check")
    drawing.set_defaults(handler=_readable_errors(diagram))
    costing = commands.add_parser("cost", help="monthly cost estimate for a traffic profile")
    costing.add_argument(
        "stacks", nargs="*", help="stack names or topology suffixes (default: all)"
    )
    costing.add_argument(
        "--assembly", default="cdk.out", help="cloud assembly dir or template file"
    )
    add_arguments(costing)
    costing.set_defaults(handler=_readable_errors(cost))


def logs_command(args: argparse.Namespace) -> int:
    """``conveyor logs FUNCTION [--follow]``: the function's CloudWatch log events in the
    running sandbox (what ``aws logs tail /aws/lambda/<name>`` shows)."""
    running = _running()
    if not running:
        raise ValueError(f"no sandbox is running (looked in {state_dir()})")
    state = running[0][1]
    client = _session().client("logs", endpoint_url=str(state["endpoint"]))
    functions: dict[str, str] = state.get("functions", {})  # name -> its log group
    wanted = args.function
    matching = [n for n in functions if n == wanted or functions[n] == wanted] or [
        n for n in functions if wanted.lower() in n.lower()
    ]
    if len(matching) != 1:
        names = ", ".join(matching or functions)
        found = "no function" if not matching else f"{len(matching)} functions"
        raise ValueError(f"{found} matching {wanted!r} (functions: {names})")
    group = functions[matching[0]]
    start = int((time.time() - args.since * 60) * 1000)
    seen: set[str] = set()
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start}
        for page in client.get_paginator("filter_log_events").paginate(**kwargs):
            for item in page.get("events", []):
                if item["eventId"] in seen:
                    continue
                seen.add(item["eventId"])
                stamp = time.strftime("%H:%M:%S", time.gmtime(item["timestamp"] / 1000))
                print(f"{stamp} {item['message']}", flush=True)
                start = max(start, int(item["timestamp"]))
        if not args.follow:
            return 0
        time.sleep(1)


# Modules of the `sandbox` and `review` extras: a missing one names the extra to install.
EXTRAS = {
    "boto3": "sandbox",
    "botocore": "sandbox",
    "moto": "sandbox",
    "airspeed": "sandbox",
    "jsonschema": "sandbox",
    "aws_lambda_powertools": "sandbox",
    "PIL": "sandbox",
    "werkzeug": "sandbox",
    "cfnlint": "review",
}


def _review(args: argparse.Namespace) -> int:
    from conveyor.review import main as review_main

    if not (Path(args.assembly) / "manifest.json").exists():
        raise ValueError(f"{args.assembly} is not a cloud assembly (no manifest.json)")
    return review_main(["review", args.assembly])


def _one_line_errors(handler: Any) -> Any:
    """Every CLI error is one line on stderr and exit code 2 (a missing extra names it)."""

    def run(args: argparse.Namespace) -> int:
        command = " ".join(p for p in (args.command, getattr(args, "action", None)) if p)
        try:
            return int(handler(args))
        except ModuleNotFoundError as error:
            root = (error.name or "").split(".")[0]
            extra = EXTRAS.get(root)
            if extra is None:
                raise
            print(
                f"conveyor {command}: needs the {extra} extra (no module {root!r}): "
                f"pip install 'conveyor[{extra}]'",
                file=sys.stderr,
            )
            return 2
        except (KeyError, ValueError, OSError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            print(f"conveyor {command}: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        except Exception as error:  # botocore's ClientError and the like: one line too
            if not type(error).__module__.startswith(("botocore", "boto3")):
                raise
            print(f"conveyor {command}: {error}", file=sys.stderr)
            return 2

    return run


def _plain(text: str) -> str:
    """Help text without reStructuredText markup."""
    return text.replace("``", "")


def main(argv: Sequence[str] | None = None) -> int:
    from conveyor.about import __version__

    try:
        from conveyor.sandbox.scenarios import EVENT_SHAPES
    except ImportError:  # without the `sandbox` extra: diagram and cost still work
        EVENT_SHAPES = {}

    parser = argparse.ArgumentParser(
        prog="conveyor",
        description=_plain(__doc__.split("\n\n")[0]),
        epilog="The sandbox and trace commands need the sandbox extra: "
        "pip install 'conveyor[sandbox]'. Errors: one line on stderr, exit code 2.",
    )
    parser.add_argument("--version", action="version", version=f"conveyor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    sandbox = commands.add_parser("sandbox", help="the local sandbox (moto, region us-east-1)")
    actions = sandbox.add_subparsers(dest="action", required=True)
    up = actions.add_parser(
        "up",
        help="start, deploy cdk.out, run the demos, serve",
        description="Start a moto server on 127.0.0.1:PORT, deploy every stack of the cloud "
        "assembly into it (region us-east-1), run the project's demo scenarios on the "
        "project's own stacks, serve the REST APIs at "
        "/restapis/<id>/<stage>/_user_request_/<path>, and deliver events to the handlers "
        "until stopped. Invocations are logged to .conveyor/sandbox.log and CloudWatch Logs.",
    )
    up.add_argument(
        "--assembly",
        default="cdk.out",
        help="the cloud assembly to deploy: this project's or your own app's cdk.out",
    )
    up.add_argument("--port", type=int, default=4566)
    up.add_argument("--once", action="store_true", help="exit after the demo scenarios")
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument("--no-demo", action="store_true", help="skip the demo scenarios")
    up.add_argument(
        "--no-broker-install",
        action="store_true",
        help="never apt-get install rabbitmq-server (by default it is, when missing and root)",
    )
    up.set_defaults(handler=sandbox_up)
    actions.add_parser(
        "status", help="the running sandboxes: endpoint, REST API URLs, outputs"
    ).set_defaults(handler=sandbox_status)
    actions.add_parser(
        "down", help="stop the background sandbox (returns when its port is free)"
    ).set_defaults(handler=sandbox_down)
    output = actions.add_parser("output", help="print one stack output of the running sandbox")
    output.add_argument("stack", help="stack name, or its last part (ImagePipeline)")
    output.add_argument("key", help="output name, e.g. UploadBucketName or 'ApiUrl (local)'")
    output.set_defaults(handler=sandbox_output)
    trace_parser = commands.add_parser(
        "trace",
        help="a topology's demo, or an event file sent into any stack, hop by hop",
        description="Deploy in-process (moto) and print every hop, each handler's log lines "
        "and result, and where each record ended (processed, DLQ with its reason, dropped). "
        "STACK: a stack name of the assembly, or one of the project's topologies.",
    )
    trace_parser.add_argument("topology", metavar="STACK")
    trace_parser.add_argument("--assembly", default="cdk.out")
    trace_parser.add_argument(
        "--event",
        help="a JSON file to send instead of the demo. Any stack: one entry-point key: "
        '{"queue"|"topic"|"bus"|"stream"|"bucket"|"function": NAME (optional when the stack '
        'has one), ...}, or {"api": "POST /orders", "body": {...}}. The demos also take: '
        + "; ".join(f"{k}: {v}" for k, v in EVENT_SHAPES.items()),
    )
    trace_parser.add_argument(
        "--correlation-id",
        help="print only the handlers' log lines carrying this correlation id (Powertools "
        "Logger correlation_id), across every function of the topology",
    )
    trace_parser.add_argument(
        "--order",
        help="OrderChoreography: follow this order of the demo (e.g. order-1, order-2) by the "
        "correlation id created with it",
    )
    trace_parser.set_defaults(handler=trace)
    logs_parser = commands.add_parser(
        "logs", help="a function's log events in the running sandbox (CloudWatch Logs)"
    )
    logs_parser.add_argument("function", help="function name, or a unique part of it")
    logs_parser.add_argument("--follow", "-f", action="store_true", help="keep printing")
    logs_parser.add_argument("--since", type=float, default=60, help="minutes back (default: 60)")
    logs_parser.set_defaults(handler=logs_command)
    reviewing = commands.add_parser(
        "review",
        help="the review summary of a synthesized assembly (cdk-nag results, cfn-lint)",
        description="Resource counts, cdk-nag findings (unacknowledged and acknowledged with "
        "their reasons) and every template checker's findings, per stack; exit 1 on any "
        "finding or on a stack cdk-nag never checked. Attach the gates to your app with "
        "conveyor.review.attach_review(app). Needs the review extra.",
    )
    reviewing.add_argument("assembly", nargs="?", default="cdk.out")
    reviewing.set_defaults(handler=_review)
    add_diagram_and_cost(commands)
    args = parser.parse_args(argv)
    return int(_one_line_errors(args.handler)(args))


if __name__ == "__main__":
    sys.exit(main())
