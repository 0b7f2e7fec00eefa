"""``conveyor`` — the local sandbox from the command line.

    conveyor sandbox up [--once] [--detach] [--port 4566] [--assembly cdk.out]
    conveyor sandbox status
    conveyor sandbox down
    conveyor trace <Topology> [--assembly cdk.out]
    conveyor diagram [STACK…] [--assembly cdk.out] [--format mermaid|svg|png|dot]
    conveyor cost [STACK…] [--events 1000000] [--payload-kb 1] [--region eu-west-3]

``sandbox up`` starts a moto server on 127.0.0.1 (AWS CLI and SDKs can use it with
``--endpoint-url http://localhost:4566``), deploys every synthesized stack into it, runs each
topology's demo scenario, then keeps delivering messages to the handlers until stopped
(``--once``: exit after the scenarios, non-zero if one failed). ``trace`` deploys in-process
and prints a topology's demo event hop by hop with timings.

This is a **local sandbox**, not AWS: see the README's fidelity table for what it emulates.
"""

from __future__ import annotations

import argparse
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

STATE_FILE = Path(".conveyor") / "sandbox.json"
LOG_FILE = Path(".conveyor") / "sandbox.log"
BANNER = "Conveyor LOCAL SANDBOX (moto + in-process handlers) — nothing is deployed to AWS"


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
    if args.detach:
        STATE_FILE.parent.mkdir(exist_ok=True)
        command = [
            sys.executable,
            "-P",
            "-m",
            "conveyor.cli",
            "sandbox",
            "up",
            "--port",
            str(args.port),
            "--assembly",
            str(args.assembly),
        ]
        with LOG_FILE.open("w") as log:
            process = subprocess.Popen(  # noqa: S603
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        for _ in range(600):
            if STATE_FILE.exists():
                print(f"Sandbox running (pid {process.pid}); log: {LOG_FILE}")
                return sandbox_status(args)
            if process.poll() is not None:
                print(LOG_FILE.read_text())
                return 1
            time.sleep(0.1)
        print("the sandbox did not start within 60 s; see", LOG_FILE)
        return 1

    from moto.server import ThreadedMotoServer

    from conveyor.sandbox.deployer import deploy
    from conveyor.sandbox.runtime import Runtime

    print(BANNER)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request lines on the console
    # moto's Step Functions interpreter calls the other services on MOTO_PORT.
    os.environ["MOTO_PORT"] = str(args.port)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
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
            f"Deployed {len(deployment.stacks)} stacks into {endpoint} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        _print_deployment(deployment)
        runtime = Runtime(deployment, session=session, endpoint_url=endpoint)
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
        _write_state(deployment, endpoint)
        print(f"Serving on {endpoint} — e.g. aws --endpoint-url {endpoint} s3 ls; Ctrl-C stops.")
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
        STATE_FILE.unlink(missing_ok=True)
        server.stop()
        plan.brokers.stop()


def _plan_brokers(assembly: Path, *, install: bool) -> Any:
    """Start the local brokers the assembly's stacks need (installing Debian's RabbitMQ when
    ``install`` and root); the stacks whose broker cannot run are not deployed, and said."""
    from conveyor.sandbox.assembly import read_assembly
    from conveyor.sandbox.brokers import plan_brokers

    stacks = read_assembly(assembly).stacks
    return plan_brokers({s.name: s.template for s in stacks}, install=install)


def _write_state(deployment: Any, endpoint: str) -> None:
    STATE_FILE.parent.mkdir(exist_ok=True)
    STATE_FILE.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "endpoint": endpoint,
                "stacks": {name: stack.outputs for name, stack in deployment.stacks.items()},
            },
            indent=2,
        )
    )


def sandbox_status(args: argparse.Namespace) -> int:
    if not STATE_FILE.exists():
        print("No sandbox is running (start one with: conveyor sandbox up --detach)")
        return 1
    state = json.loads(STATE_FILE.read_text())
    try:
        os.kill(int(state["pid"]), 0)
    except OSError:
        print(f"A sandbox state file exists but process {state['pid']} is gone; removing it")
        STATE_FILE.unlink(missing_ok=True)
        return 1
    print(f"{BANNER}\nRunning: pid {state['pid']}, endpoint {state['endpoint']}")
    for stack, outputs in state["stacks"].items():
        print(f"  {stack}")
        for key, value in outputs.items():
            print(f"    {key} = {value}")
    return 0


def sandbox_down(args: argparse.Namespace) -> int:
    if not STATE_FILE.exists():
        print("No sandbox is running")
        return 0
    pid = int(json.loads(STATE_FILE.read_text())["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        STATE_FILE.unlink(missing_ok=True)
        print("The sandbox process was already gone")
        return 0
    for _ in range(100):
        if not STATE_FILE.exists():
            break
        time.sleep(0.1)
    print(f"Sandbox (pid {pid}) stopped")
    return 0


def trace(args: argparse.Namespace) -> int:
    from moto import mock_aws

    from conveyor.sandbox.deployer import deploy
    from conveyor.sandbox.runtime import Runtime
    from conveyor.sandbox.scenarios import SCENARIOS

    scenario_type = next((s for s in SCENARIOS if s.topology == args.topology), None)
    if scenario_type is None:
        print(
            f"unknown topology {args.topology!r}; one of: "
            + ", ".join(s.topology for s in SCENARIOS)
        )
        return 2
    print(BANNER)
    from conveyor.sandbox.assembly import read_assembly
    from conveyor.sandbox.brokers import plan_brokers

    selected = [
        stack
        for stack in read_assembly(Path(args.assembly)).stacks
        if stack.name.endswith(f"-{args.topology}")
    ]
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

        def show(event: Any) -> None:
            elapsed = (time.perf_counter() - started) * 1000
            print(f"  {elapsed:8.1f} ms  {_describe(event)}")

        with Runtime(deployment, session=session, on_event=show) as runtime:
            scenario = scenario_type(deployment, runtime, session)
            if args.event:
                print(f"▶ {scenario.topology}: the event in {args.event}")
                scenario.send(json.loads(Path(args.event).read_text()))
                report = runtime.pump()
                print(
                    f"   {report.invocations} invocations, {report.records_processed} records "
                    f"processed, {report.records_failed} failed, {report.moved_to_dlq} moved to "
                    f"a DLQ, {report.on_failure} sent to on-failure queues"
                )
                return 0
            print(f"▶ {scenario.topology}: {scenario.description}")
            checks = scenario.run()
            for line in getattr(scenario, "trace_lines", []):  # e.g. Step Functions histories
                print(line)
        for item in checks:
            print(
                f"   {'✓' if item.ok else '✗'} {item.name}"
                + ("" if item.ok else f" (expected {item.expected}, observed {item.observed})")
            )
        return 0 if all(c.ok for c in checks) else 1


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


def main(argv: Sequence[str] | None = None) -> int:
    from conveyor.about import __version__

    try:
        from conveyor.sandbox.scenarios import EVENT_SHAPES
    except ImportError:  # without the `sandbox` extra: diagram and cost still work
        EVENT_SHAPES = {}

    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"conveyor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    sandbox = commands.add_parser("sandbox", help="the local sandbox")
    actions = sandbox.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start, deploy cdk.out, run the demos, serve")
    up.add_argument("--assembly", default="cdk.out")
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
    actions.add_parser("status", help="is a sandbox running, and its outputs").set_defaults(
        handler=sandbox_status
    )
    actions.add_parser("down", help="stop the background sandbox").set_defaults(
        handler=sandbox_down
    )
    trace_parser = commands.add_parser("trace", help="a topology's demo event, hop by hop")
    trace_parser.add_argument("topology")
    trace_parser.add_argument("--assembly", default="cdk.out")
    trace_parser.add_argument(
        "--event",
        help="a JSON file to send instead of the demo; shapes: "
        + "; ".join(f"{k}: {v}" for k, v in EVENT_SHAPES.items()),
    )
    trace_parser.set_defaults(handler=trace)
    add_diagram_and_cost(commands)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
