"""conveyor.constructs.assets: handler assets staged with the handler kit, deterministically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import handler_kit
import pytest

from conveyor.constructs import assets
from conveyor.constructs.assets import ASSET_EXCLUDES, HANDLER_KIT_DIR, stage_handler_asset
from conveyor.sandbox.model import DeployedStack, Deployment, FunctionSpec
from conveyor.sandbox.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
CONVEYOR_ASSETS = ("image_resize", "order_events", "order_pipeline", "payments", "remediation")


def tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def probe_asset(tmp_path: Path) -> Path:
    """A handler asset whose handler reports which handler_kit module objects it sees."""
    asset = tmp_path / "src" / "probe"
    (asset / "probe" / "__pycache__").mkdir(parents=True)
    (asset / "probe" / "__init__.py").write_text("")
    (asset / "probe" / "handler.py").write_text(
        "import handler_kit\n"
        "from handler_kit import clients\n\n\n"
        "def handler(event, context):\n"
        "    return {'kit': id(handler_kit), 'clients': id(clients), "
        "'file': handler_kit.__file__}\n"
    )
    (asset / "probe" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"cache")
    (asset / "requirements.txt").write_text("aws-lambda-powertools==3.37.0\n")
    (asset / ".mypy_cache").mkdir()
    (asset / ".mypy_cache" / "x.json").write_text("{}")
    return asset


def test_the_staged_asset_holds_the_handler_package_and_the_kit_without_caches(
    probe_asset: Path, tmp_path: Path
) -> None:
    staged = stage_handler_asset(probe_asset, cache_dir=tmp_path / "cache")

    files = tree(staged)
    assert sorted(name for name in files if name.startswith("probe/")) == [
        "probe/__init__.py",
        "probe/handler.py",
    ]
    kit = {name.removeprefix("handler_kit/"): data for name, data in files.items()}
    assert {name: data for name, data in kit.items() if not name.startswith("probe/")} == {
        name: data for name, data in tree(HANDLER_KIT_DIR).items() if "__pycache__" not in name
    }
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in files)
    assert "requirements.txt" not in files
    assert not any(".mypy_cache" in name for name in files)


def test_staging_is_content_addressed(probe_asset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = stage_handler_asset(probe_asset, cache_dir=cache)
    (probe_asset / "probe" / "__pycache__" / "other.pyc").write_bytes(b"more cache")
    assert stage_handler_asset(probe_asset, cache_dir=cache) == first, "caches do not count"

    (probe_asset / "probe" / "extra.py").write_text("X = 1\n")
    second = stage_handler_asset(probe_asset, cache_dir=cache)
    assert second != first
    assert second.name.startswith("probe-")
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, second.name])


def test_an_asset_with_its_own_handler_kit_is_refused(tmp_path: Path) -> None:
    asset = tmp_path / "mine"
    (asset / "handler_kit").mkdir(parents=True)
    (asset / "handler_kit" / "__init__.py").write_text("")
    with pytest.raises(ValueError, match="already has a top-level handler_kit"):
        stage_handler_asset(asset, cache_dir=tmp_path / "cache")
    assert stage_handler_asset(asset, cache_dir=tmp_path / "cache", handler_kit=None).is_dir()


def test_one_exclude_list_for_every_asset() -> None:
    for module in ("stacks/_common.py", "constructs/monitoring.py"):
        source = (ROOT / module).read_text()
        assert "Code.from_asset" not in source, f"{module} stages through handler_code"
    assert "requirements.txt" in ASSET_EXCLUDES
    assert "**/__pycache__" in ASSET_EXCLUDES


# ---------------------------------------------------------------------------------------------
# Synthesized assets


def lambda_functions(outdir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(stack, logical id) -> properties of every Lambda function with a Conveyor handler."""
    functions = {}
    for template in sorted(outdir.glob("*.template.json")):
        resources = json.loads(template.read_text())["Resources"]
        for logical_id, resource in resources.items():
            properties = resource.get("Properties", {})
            handler = str(properties.get("Handler", ""))
            if resource["Type"] == "AWS::Lambda::Function" and handler.split(".")[0] in (
                CONVEYOR_ASSETS
            ):
                functions[(template.stem, logical_id)] = properties
    return functions


def asset_dir(outdir: Path, properties: dict[str, Any]) -> Path:
    key = properties["Code"]["S3Key"]
    return outdir / f"asset.{key.removesuffix('.zip')}"


def test_every_synthesized_handler_asset_contains_its_package_and_the_kit(synthesized) -> None:
    outdir = Path(synthesized["outdir"])
    functions = lambda_functions(outdir)
    assert {properties["Handler"].split(".")[0] for properties in functions.values()} == set(
        CONVEYOR_ASSETS
    )
    for (stack, logical_id), properties in functions.items():
        staged = asset_dir(outdir, properties)
        package = properties["Handler"].split(".")[0]
        entries = sorted(entry.name for entry in staged.iterdir())
        assert entries == sorted([package, "handler_kit"]), (stack, logical_id)
        assert (staged / "handler_kit" / "consumer.py").is_file()


def synthesized_asset_keys(make_app, sandbox_settings, outdir: Path) -> dict[str, str]:
    from conveyor.topologies import build

    app = make_app(outdir=str(outdir))
    build(app, sandbox_settings)
    app.synth()
    return {
        f"{stack}/{logical_id}": properties["Code"]["S3Key"]
        for (stack, logical_id), properties in lambda_functions(outdir).items()
    }


def test_two_syntheses_from_different_directories_give_the_same_asset_hashes(
    make_app, sandbox_settings, synthesized, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    again = synthesized_asset_keys(make_app, sandbox_settings, tmp_path / "cdk.out")
    first = {
        f"{stack}/{logical_id}": properties["Code"]["S3Key"]
        for (stack, logical_id), properties in lambda_functions(Path(synthesized["outdir"])).items()
    }
    assert again == first
    assert len(set(first.values())) == len(CONVEYOR_ASSETS), "one asset per handler folder"


# ---------------------------------------------------------------------------------------------
# The sandbox runs each function with its own copy of the kit


def test_each_sandbox_function_has_its_own_handler_kit_even_when_the_host_imported_it(
    probe_asset: Path, tmp_path: Path
) -> None:
    staged = stage_handler_asset(probe_asset, cache_dir=tmp_path / "cache")
    specs = [
        FunctionSpec(
            logical_id=name,
            name=f"sandbox-{name}",
            arn=f"arn:aws:lambda:us-east-1:123456789012:function:sandbox-{name}",
            handler="probe.handler.handler",
            code_dir=staged,
            environment={},
            timeout_s=30,
            runtime="python3.14",
        )
        for name in ("First", "Second")
    ]
    deployment = Deployment(
        stacks={
            "Probe": DeployedStack(
                name="Probe", template={}, functions={s.logical_id: s for s in specs}
            )
        }
    )
    assert handler_kit.__file__.startswith(str(assets.LAMBDAS_DIR)), "the host imported the kit"

    with Runtime(deployment) as runtime:
        first, second = (runtime.invoke(name, {}).response for name in ("First", "Second"))
        again = runtime.invoke("First", {}).response

    assert first["file"].startswith(str(staged))
    assert len({first["kit"], second["kit"], id(handler_kit)}) == 3
    assert first["clients"] != second["clients"]
    assert again == first, "a warm function keeps its own kit"
    assert handler_kit.__file__.startswith(str(assets.LAMBDAS_DIR)), "the host's kit restored"
