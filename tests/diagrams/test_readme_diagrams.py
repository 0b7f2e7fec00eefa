"""The README's topology diagrams are the generated ones, from what ``make synth`` builds today.

The README is drawn from ``make synth``'s assembly (cdk.json's default ``sandbox``
environment). This test synthesizes the same app with the same settings (without the review
plugins, which change no resource) and compares; the diagrams name neither the environment nor
asset hashes.
"""

from __future__ import annotations

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
    for topology in ("ImagePipeline", "OrderEvents", "PaymentsRouting", "OrderPipeline"):
        assert f"Conveyor-sandbox-{topology}" in names, f"no generated diagram for {topology}"


def test_readme_diagrams_equal_what_the_templates_produce(sandbox_stacks):
    stale = []
    for name, body in readme_blocks(README.read_text()):
        assert name in sandbox_stacks, f"README draws {name}, which make synth does not build"
        if body != to_mermaid(build_graph(sandbox_stacks[name])):
            stale.append(name)
    assert not stale, f"README diagrams out of date for {stale}: regenerate with `{REGENERATE}`"
