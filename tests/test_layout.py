"""The constructs/ folder must never shadow the `constructs` library (README, Development)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_constructs_library_comes_from_site_packages_only():
    import constructs

    assert constructs.__file__ is not None
    library = Path(constructs.__file__).resolve().parent
    assert "site-packages" in library.parts
    paths = [Path(p).resolve() for p in constructs.__path__]
    assert paths == [library], paths
    assert ROOT / "constructs" not in paths


def test_constructs_folder_has_no_init_module():
    assert not (ROOT / "constructs" / "__init__.py").exists()


def test_conveyor_constructs_resolves_to_the_repo_folder():
    module = importlib.import_module("conveyor.constructs.queue_consumer")
    assert Path(module.__file__).resolve().parent == ROOT / "constructs"


def test_app_runs_with_root_off_sys_path_like_cdk_json_says():
    """`python -P` keeps the root off sys.path: the library, not the folder, is imported."""
    code = "import constructs, conveyor.constructs.queue_consumer; print(constructs.__file__)"
    result = subprocess.run(
        [sys.executable, "-P", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "site-packages" in result.stdout


def test_root_on_sys_path_would_merge_the_folder_into_the_library():
    """The trap the guards exist for: without -P, extend_path merges the repo folder in."""
    code = "import constructs; print(constructs.__path__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert str(ROOT / "constructs") in result.stdout


def test_wheel_maps_every_folder_under_conveyor_and_ships_the_lambda_assets(tmp_path):
    """What `pip install conveyor` gets: no top-level `constructs`, handler assets included."""
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("conveyor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"conveyor", f"{wheel.name.split('-py3')[0]}.dist-info"}
    for expected in (
        "conveyor/constructs/queue_consumer.py",
        "conveyor/stacks/image_pipeline.py",
        "conveyor/settings.py",
        "conveyor/lambdas/image_resize/requirements.txt",
        "conveyor/lambdas/image_resize/image_resize/handler.py",
    ):
        assert expected in names


def test_conveyor_version_is_the_distribution_version_of_pyproject(capsys):
    """`conveyor --version` reports the version `pip install` recorded from pyproject.toml."""
    from conveyor.cli import main

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"conveyor {declared}"
