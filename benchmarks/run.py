"""Benchmarks, measured as ratios against a baseline in the same run (never asserted in tests).

- Synth: ``cdk synth`` of the Conveyor app vs. of a minimal one-queue app, same CLI, same flags.
- Cold import: each handler module imported in a fresh interpreter vs. a minimal handler that
  only does ``import boto3`` (what every Python Lambda pays anyway).
- Sandbox: a 10,000-message soak and the delivery overhead of the local sandbox, see
  ``benchmarks/sandbox.py``.
- Streaming: shard balance of the partition-key strategies and the sandbox's stream
  throughput against the handler called directly, see ``benchmarks/streaming.py``.
- Filters: Conveyor's EventBridge/SNS matcher against moto's, patterns × events of the
  conformance suite, see ``benchmarks/filters.py``.

Each figure is the median of several runs; the runs of a measure and of its baseline are
interleaved so that machine noise hits both alike. Results go to ``benchmarks/results.md``.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import filters, sandbox, streaming
from conveyor.constructs.assets import stage_handler_asset

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.md"
CDK = ROOT / "node_modules" / ".bin" / "cdk"

# Handler modules: (asset folder, module imported by the Lambda runtime); the imports are
# timed from the staged asset (conveyor.constructs.assets), handler kit included.
LAMBDAS = ROOT / "lambdas"
HANDLERS = {
    "image_resize": (LAMBDAS / "image_resize", "image_resize.handler"),
    "order_events": (LAMBDAS / "order_events", "order_events.handler"),
    "order_events.routing": (LAMBDAS / "order_events", "order_events.routing"),
    "payments.review": (LAMBDAS / "payments", "payments.review"),
    "remediation": (LAMBDAS / "remediation", "remediation.handler"),
    "order_pipeline": (LAMBDAS / "order_pipeline", "order_pipeline.handler"),
}

BASELINE_APP = """
from aws_cdk import App, Stack, aws_sqs as sqs
app = App()
stack = Stack(app, "Baseline")
sqs.Queue(stack, "Queue")
app.synth()
"""

IMPORT_PROBE = """
import sys, time
sys.path.insert(0, sys.argv[1])
start = time.perf_counter()
__import__(sys.argv[2])
print(time.perf_counter() - start)
"""


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    # Handlers read their settings lazily, but set what a deployed function would have.
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env.setdefault("POWERTOOLS_SERVICE_NAME", "bench")
    return env


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=environment(), check=True, capture_output=True)
    return time.perf_counter() - start


def synth_command(outdir: Path, app: str | None = None) -> list[str]:
    command = [str(CDK), "synth", "--quiet", "--no-notices", "-o", str(outdir)]
    if app is not None:
        command += ["--app", app]
    return command


def interleaved(runs: int, **measures: Callable[[], float]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(runs):
        for name, measure in measures.items():
            samples[name].append(measure())
    return samples


def bench_synth(runs: int) -> tuple[float, float]:
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    try:
        baseline_app = work / "baseline_app.py"
        baseline_app.write_text(BASELINE_APP)
        app_cmd = synth_command(work / "app.out")
        base_cmd = synth_command(work / "base.out", f"{sys.executable} -P {baseline_app}")
        timed(app_cmd, ROOT)  # warm-up: jsii cache, layer cache, asset staging
        samples = interleaved(
            runs,
            app=lambda: timed(app_cmd, ROOT),
            baseline=lambda: timed(base_cmd, ROOT),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return statistics.median(samples["app"]), statistics.median(samples["baseline"])


def import_time(folder: Path, module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-P", "-c", IMPORT_PROBE, str(folder), module],
        env=environment(),
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def bench_imports(runs: int) -> dict[str, tuple[float, float]]:
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    try:
        (work / "minimal_handler.py").write_text(
            "import boto3\n\ndef handler(event, context):\n    return boto3.__version__\n"
        )
        results = {}
        for name, (asset, module) in HANDLERS.items():
            # The folder Lambda gets: the asset with the handler kit staged next to it.
            folder = stage_handler_asset(asset)
            import_time(folder, module)  # warm the OS file cache and .pyc files
            import_time(work, "minimal_handler")
            samples = interleaved(
                runs,
                handler=lambda f=folder, m=module: import_time(f, m),
                baseline=lambda: import_time(work, "minimal_handler"),
            )
            results[name] = (
                statistics.median(samples["handler"]),
                statistics.median(samples["baseline"]),
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> int:
    synth_runs, import_runs = 3, 9
    print(f"synth: {synth_runs} interleaved runs each ...", flush=True)
    app_s, base_s = bench_synth(synth_runs)
    print(f"cold imports: {import_runs} interleaved runs each ...", flush=True)
    imports = bench_imports(import_runs)
    filter_lines = filters.section()  # no assembly needed: measured first
    sandbox_lines = sandbox.sections()
    print("streaming: shard balance and stream throughput ...", flush=True)
    with sandbox._assembly() as assembly:
        sandbox_lines += streaming.section(assembly)
    sandbox_lines += filter_lines
    node = subprocess.run(
        ["node", "--version"], env=environment(), capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        "# Benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, Node {node}. "
        "Medians; each measure interleaved with its baseline in the same run. "
        "Regenerate with `make bench`.",
        "",
        "## Synth (`cdk synth`, warm caches)",
        "",
        "| what | median (s) | ratio to baseline |",
        "| --- | ---: | ---: |",
        f"| Conveyor app (all stacks, cdk-nag on) | {app_s:.2f} | {app_s / base_s:.2f} |",
        f"| baseline: one-queue app | {base_s:.2f} | 1.00 |",
        "",
        "## Handler cold import (fresh interpreter)",
        "",
        "| handler | median (ms) | baseline `import boto3` (ms) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, (handler_s, baseline_s) in imports.items():
        lines.append(
            f"| {name} | {handler_s * 1000:.0f} | {baseline_s * 1000:.0f} "
            f"| {handler_s / baseline_s:.2f} |"
        )
    lines += sandbox_lines
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
