"""PythonDependenciesLayer: real pip bundling for the Lambda platform, cached by content."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from conveyor.constructs.python_layer import PipLayerBundler, PythonDependenciesLayer, layer_key

# A small pure-Python wheel from the package index keeps the real install fast.
REQUIREMENTS = "jmespath==1.1.0\n"


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    folder = tmp_path / "asset"
    folder.mkdir()
    path = folder / "requirements.txt"
    path.write_text(REQUIREMENTS)
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("layer-cache")


def test_bundles_the_requirements_under_python_for_the_lambda_runtime(
    requirements, cache_dir, tmp_path
):
    bundler = PipLayerBundler(requirements, "3.14", "arm64", cache_dir)
    out = tmp_path / "out"
    assert bundler.try_bundle(str(out)) is True
    assert (out / "python" / "jmespath" / "__init__.py").is_file()
    assert not (out / "python" / "bin").exists()
    assert (cache_dir / bundler.key / "python" / "jmespath").is_dir()


def test_unchanged_requirements_reuse_the_cache_without_running_pip(
    requirements, cache_dir, tmp_path, monkeypatch
):
    PipLayerBundler(requirements, "3.14", "arm64", cache_dir).try_bundle(str(tmp_path / "first"))

    def no_pip(*args, **kwargs):
        raise AssertionError("pip ran although the layer is cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    out = tmp_path / "second"
    PipLayerBundler(requirements, "3.14", "arm64", cache_dir).try_bundle(str(out))
    assert (out / "python" / "jmespath" / "__init__.py").is_file()


def test_key_changes_with_requirements_python_version_and_architecture():
    base = layer_key(REQUIREMENTS, "3.14", "arm64")
    assert base == layer_key(REQUIREMENTS + "\n", "3.14", "arm64")  # whitespace only
    assert base == layer_key(f"# a comment\n\n{REQUIREMENTS}", "3.14", "arm64")
    assert base != layer_key("jmespath==1.0.1\n", "3.14", "arm64")
    assert base != layer_key(REQUIREMENTS, "3.13", "arm64")
    assert base != layer_key(REQUIREMENTS, "3.14", "x86_64")


def test_a_requirement_pip_cannot_install_fails_loudly_with_pips_message(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("conveyor-no-such-package-0f3c9==1.0\n")
    bundler = PipLayerBundler(requirements, "3.14", "arm64", tmp_path / "cache")
    with pytest.raises(RuntimeError, match="pip exit") as error:
        bundler.try_bundle(str(tmp_path / "out"))
    assert "conveyor-no-such-package-0f3c9" in str(error.value)
    assert not (tmp_path / "cache" / bundler.key).exists()


def test_layer_declares_runtime_architecture_and_content_hash(
    make_app, requirements, cache_dir, tmp_path
):
    stack = Stack(make_app(bundle=True, outdir=str(tmp_path / "cdk.out")), "LayerTest")
    layer = PythonDependenciesLayer(
        stack,
        "Deps",
        requirements_file=requirements,
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        cache_dir=cache_dir,
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.14"], "CompatibleArchitectures": ["arm64"]},
    )
    assert layer.key == layer_key(REQUIREMENTS, "3.14", "arm64")
    staged = list((tmp_path / "cdk.out").glob("asset.*"))
    assert len(staged) == 1
    assert (staged[0] / "python" / "jmespath" / "__init__.py").is_file()


def test_non_python_runtime_and_missing_file_are_rejected(make_app, requirements, tmp_path):
    stack = Stack(make_app(), "Invalid")
    with pytest.raises(ValueError, match="a Python runtime is required"):
        PythonDependenciesLayer(
            stack,
            "Node",
            requirements_file=requirements,
            runtime=lambda_.Runtime.NODEJS_22_X,
            architecture=lambda_.Architecture.ARM_64,
        )
    with pytest.raises(ValueError, match="no requirements file"):
        PythonDependenciesLayer(
            stack,
            "Missing",
            requirements_file=tmp_path / "nope.txt",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
        )
