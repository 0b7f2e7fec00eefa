"""The README's diagrams and costs are generated, from what ``make synth`` builds today.

The README is drawn from ``make synth``'s assembly (cdk.json's default ``sandbox``
environment). This test synthesizes the same app with the same settings (without the review
plugins, which change no resource) and compares; the diagrams name neither the environment nor
asset hashes.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from conveyor.diagrams import build_graph, readme_blocks, to_mermaid
from conveyor.templates import StackTemplate, read_assembly

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REGENERATE = "make synth && .venv/bin/conveyor diagram --update-readme README.md"


@pytest.fixture(scope="module")
def sandbox_stacks(make_app, tmp_path_factory) -> dict[str, StackTemplate]:
    from conveyor.settings import Settings
    from conveyor.topologies import build

    outdir = tmp_path_factory.mktemp("sandbox.out")
    app = make_app(outdir=str(outdir))
    build(app, Settings.from_context(app.node.try_get_context))
    app.synth()
    return {s.name: s for s in read_assembly(outdir)}


def test_every_topology_section_has_a_generated_diagram():
    names = [name for name, _ in readme_blocks(README.read_text())]
    for topology in (
        "ImagePipeline",
        "OrderEvents",
        "PaymentsRouting",
        "OrderPipeline",
        "Telemetry",
        "OrderFulfillment",
        "Accounts",
        "OrderChoreography",
        "ToursRabbitMQ",
        "ToursKafka",
    ):
        assert f"Conveyor-sandbox-{topology}" in names, f"no generated diagram for {topology}"


def test_readme_diagrams_equal_what_the_templates_produce(sandbox_stacks):
    stale = []
    for name, body in readme_blocks(README.read_text()):
        assert name in sandbox_stacks, f"README draws {name}, which make synth does not build"
        if body != to_mermaid(build_graph(sandbox_stacks[name])):
            stale.append(name)
    assert not stale, f"README diagrams out of date for {stale}: regenerate with `{REGENERATE}`"


COST_CLAIM = re.compile(
    r"about \$(?P<total>[0-9.,]+)\*\*\s+\((?P<region>[a-z0-9-]+),"
    r"\s+`conveyor cost\s(?P<args>[^`]+)`\)"
)
COST_OUTPUT = re.compile(
    r"```console\n\$ conveyor cost (?P<args>[^\n]+)\n(?P<body>.*?)```", re.DOTALL
)


def _report(sandbox_stacks, arguments: list[str]) -> str:
    from conveyor.cost import Assumptions, add_arguments, estimate, format_report, load_prices

    parser = argparse.ArgumentParser()
    parser.add_argument("stacks", nargs="*")
    add_arguments(parser)
    args = parser.parse_args(arguments)
    (name,) = [n for n in sandbox_stacks if n.endswith(f"-{args.stacks[0]}")]
    report = estimate(sandbox_stacks[name], load_prices(), args.region, Assumptions.from_args(args))
    return format_report(report)


def test_readme_costs_equal_what_conveyor_cost_computes(sandbox_stacks):
    text = README.read_text()
    claims = list(COST_CLAIM.finditer(text))
    assert len(claims) == 4, "each topology section states its cost for 1 M events"
    for claim in claims:
        arguments = [*shlex.split(claim["args"]), "--region", claim["region"]]
        report = _report(sandbox_stacks, arguments)
        total = report.split("TOTAL")[1].split()[0]
        assert claim["total"] == total, f"README says ${claim['total']} for `{claim['args']}`"
    (output,) = COST_OUTPUT.finditer(text)
    assert output["body"] == _report(sandbox_stacks, shlex.split(output["args"])), (
        "the README's `conveyor cost` output is stale: paste the command's output again"
    )
