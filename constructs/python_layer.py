"""PythonDependenciesLayer: a Lambda layer built from a requirements file, without Docker.

``pip install --platform … --only-binary=:all: --target python/`` downloads the wheels built for
the Lambda runtime's Python version and architecture from the package index, on any host.
The result is cached by a key made of the requirements text, the Python version and the
architecture, so an unchanged re-synth (or another test's synth into a new ``cdk.out``) copies
the cached folder instead of reinstalling; the asset hash is that same key, so the layer
version only changes when its dependencies do.

Limits: only packages published as wheels for the target (manylinux) platform can be
installed — sdists are refused, which is what makes the build reproducible without Docker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling, RemovalPolicy
from aws_cdk import aws_lambda as lambda_

from constructs import Construct
from conveyor.constructs.rules import require

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "conveyor" / "layers"
# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34). pip matches an explicit
# --platform exactly, so every manylinux tag that glibc accepts is listed.
_MANYLINUX = ("manylinux_2_34", "manylinux_2_28", "manylinux_2_17", "manylinux2014")
_PLATFORMS = {"arm64": "aarch64", "x86_64": "x86_64"}


def layer_key(requirements: str, python_version: str, architecture: str) -> str:
    """The cache key and asset hash of a layer: what it is built from, nothing else
    (comments and blank lines of the requirements file do not count)."""
    lines = (line.strip() for line in requirements.splitlines())
    pinned = "\n".join(line for line in lines if line and not line.startswith("#"))
    digest = hashlib.sha256()
    for part in ("v1", pinned, python_version, architecture):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class PipLayerBundler:
    """Local bundler: ``pip install`` for the target platform into ``<output>/python``."""

    def __init__(
        self, requirements_file: Path, python_version: str, architecture: str, cache_dir: Path
    ) -> None:
        self.requirements_file = requirements_file
        self.python_version = python_version
        self.platforms = [f"{tag}_{_PLATFORMS[architecture]}" for tag in _MANYLINUX]
        self.key = layer_key(requirements_file.read_text(), python_version, architecture)
        self.cache_dir = cache_dir

    def try_bundle(self, output_dir: str, _options: Any = None) -> bool:
        # jsii passes the BundlingOptions struct positionally, not as the keyword arguments
        # of the generated ILocalBundling stub; hence the cast where this is handed to CDK.
        cached = self.cache_dir / self.key
        if not cached.is_dir():
            self._build_into(cached)
        shutil.copytree(cached, output_dir, dirs_exist_ok=True)
        return True

    def _build_into(self, cached: Path) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".build-") as tmp:
            target = Path(tmp) / "layer" / "python"
            command = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                self.python_version,
                *(arg for platform in self.platforms for arg in ("--platform", platform)),
                "--target",
                str(target),
                "--requirement",
                str(self.requirements_file),
            ]
            result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
            if result.returncode != 0:
                raise RuntimeError(
                    f"building the dependencies layer for {self.requirements_file} failed "
                    f"(pip exit {result.returncode}):\n{result.stderr.strip()}"
                )
            shutil.rmtree(target / "bin", ignore_errors=True)
            # Atomic publish: a concurrent synth either sees the whole folder or builds its own.
            try:
                os.rename(target.parent, cached)
            except OSError:
                if not cached.is_dir():
                    raise


class PythonDependenciesLayer(Construct):
    """A Lambda layer with the packages of ``requirements_file`` for the given runtime.

    Attributes: ``layer`` (the ``LayerVersion``), ``key`` (cache key and asset hash).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        requirements_file: Path,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        description: str | None = None,
        cache_dir: Path | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """Build (or reuse from the cache) and declare the layer.

        :param requirements_file: a pip requirements file; pin exact versions.
        :param runtime: a Python runtime; its version selects the wheels.
        :param architecture: ARM_64 or X86_64; selects the wheels' platform.
        :param description: Default: names the requirements file.
        :param cache_dir: where built layers are kept between syntheses.
            Default: ``~/.cache/conveyor/layers``.
        :param removal_policy: of the layer version. Default: RETAIN (CDK's default).
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(requirements_file.is_file(), path, f"no requirements file at {requirements_file}")
        require(
            runtime.family == lambda_.RuntimeFamily.PYTHON,
            path,
            f"a Python runtime is required (got {runtime.name})",
        )
        python_version = runtime.name.removeprefix("python")
        arch = architecture.name
        require(arch in _PLATFORMS, path, f"unsupported architecture {arch}")
        bundler = PipLayerBundler(
            requirements_file, python_version, arch, cache_dir or DEFAULT_CACHE_DIR
        )
        self.key = bundler.key
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(requirements_file.parent),
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=self.key,
                bundling=BundlingOptions(
                    image=runtime.bundling_image, local=cast(ILocalBundling, bundler)
                ),
            ),
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
            description=description or f"Python dependencies from {requirements_file.name}",
            removal_policy=removal_policy,
        )
