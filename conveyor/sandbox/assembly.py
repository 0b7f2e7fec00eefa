"""Read a CDK cloud assembly (``cdk.out``): its stacks, their templates and their file assets.

Only what the sandbox deployer needs: stack artifacts (``aws:cloudformation:stack``) in
dependency order, each with its template and a map from the S3 object key a template uses for
a file asset (``"<hash>.zip"``) to the local staged folder or file in the assembly.
Nested assemblies (CDK stages, ``cdk:cloud-assembly``) are read too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_ARTIFACT = "aws:cloudformation:stack"
ASSET_MANIFEST_ARTIFACT = "cdk:asset-manifest"
NESTED_ASSEMBLY_ARTIFACT = "cdk:cloud-assembly"


class AssemblyError(Exception):
    """The cloud assembly is missing, malformed or asks for something the sandbox cannot do."""


@dataclass
class Asset:
    """One file asset: its source hash, where it is staged locally and how it is packaged."""

    hash: str
    path: Path  # absolute: the staged folder (packaging "zip") or file ("file")
    packaging: str  # "zip" (a folder zipped on upload) or "file"


@dataclass
class StackArtifact:
    name: str  # the stack name (what CloudFormation would call it)
    artifact_id: str
    template: dict[str, Any]
    template_path: Path
    dependencies: list[str] = field(default_factory=list)  # names of the stacks it needs
    # S3 object key as the template uses it ("<hash>.zip") or the bare hash -> local asset.
    assets: dict[str, Asset] = field(default_factory=dict)

    def asset_for_key(self, key: str) -> Asset | None:
        """The asset an ``S3Key`` refers to: ``"<hash>.zip"``, ``"<hash>.json"`` or ``"<hash>"``."""
        if key in self.assets:
            return self.assets[key]
        stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
        return self.assets.get(stem)


@dataclass
class CloudAssembly:
    directory: Path
    stacks: list[StackArtifact]  # dependency order: a stack comes after those it needs

    def stack(self, name: str) -> StackArtifact:
        for stack in self.stacks:
            if name in (stack.name, stack.artifact_id):
                return stack
        known = ", ".join(s.name for s in self.stacks)
        raise AssemblyError(f"no stack {name!r} in {self.directory} (stacks: {known})")


def read_assembly(directory: Path | str) -> CloudAssembly:
    """Read ``directory/manifest.json`` and every stack it declares, in dependency order."""
    root = Path(directory).resolve()
    stacks: list[StackArtifact] = []
    _read_manifest(root, stacks)
    return CloudAssembly(directory=root, stacks=_dependency_order(stacks))


def select_stacks(assembly: CloudAssembly, names: Sequence[str] | None) -> list[StackArtifact]:
    """The stacks named (by stack name or artifact id), in dependency order; all when ``None``.

    A selected stack whose dependency is not selected is an error: its references could not
    resolve.
    """
    if names is None:
        return list(assembly.stacks)
    wanted = {assembly.stack(name).name for name in names}
    selected = [s for s in assembly.stacks if s.name in wanted]
    for stack in selected:
        missing = [d for d in stack.dependencies if d not in wanted]
        if missing:
            raise AssemblyError(
                f"stack {stack.name} depends on {', '.join(missing)}: select it too"
            )
    return selected


def _read_manifest(directory: Path, stacks: list[StackArtifact]) -> None:
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise AssemblyError(f"{manifest_path} not found: synthesize the app first (make synth)")
    manifest = _load_json(manifest_path)
    artifacts: Mapping[str, Any] = manifest.get("artifacts") or {}
    # Artifact id -> stack name, to turn artifact dependencies into stack dependencies.
    stack_names = {
        artifact_id: _stack_name(artifact_id, artifact)
        for artifact_id, artifact in artifacts.items()
        if artifact.get("type") == STACK_ARTIFACT
    }
    for artifact_id, artifact in artifacts.items():
        kind = artifact.get("type")
        if kind == NESTED_ASSEMBLY_ARTIFACT:
            nested = (artifact.get("properties") or {}).get("directoryName")
            if nested:
                _read_manifest(directory / nested, stacks)
            continue
        if kind != STACK_ARTIFACT:
            continue
        properties = artifact.get("properties") or {}
        template_file = properties.get("templateFile")
        if not template_file:
            raise AssemblyError(f"stack artifact {artifact_id} has no templateFile")
        template_path = directory / template_file
        template = _load_json(template_path)
        dependencies = [
            stack_names[d] for d in artifact.get("dependencies") or [] if d in stack_names
        ]
        assets: dict[str, Asset] = {}
        for dependency in artifact.get("dependencies") or []:
            dep = artifacts.get(dependency) or {}
            if dep.get("type") == ASSET_MANIFEST_ARTIFACT:
                asset_file = (dep.get("properties") or {}).get("file")
                if asset_file:
                    assets.update(_read_asset_manifest(directory, directory / asset_file))
        stacks.append(
            StackArtifact(
                name=stack_names[artifact_id],
                artifact_id=artifact_id,
                template=template,
                template_path=template_path,
                dependencies=dependencies,
                assets=assets,
            )
        )


def _stack_name(artifact_id: str, artifact: Mapping[str, Any]) -> str:
    properties = artifact.get("properties") or {}
    return str(properties.get("stackName") or artifact.get("displayName") or artifact_id)


def _read_asset_manifest(directory: Path, path: Path) -> dict[str, Asset]:
    """``<hash>`` and every destination ``objectKey`` -> the staged asset."""
    manifest = _load_json(path)
    assets: dict[str, Asset] = {}
    for asset_hash, entry in (manifest.get("files") or {}).items():
        source = entry.get("source") or {}
        source_path = source.get("path")
        if not source_path:  # built by an executable: nothing staged to run locally
            continue
        asset = Asset(
            hash=asset_hash,
            path=(directory / source_path).resolve(),
            packaging=str(source.get("packaging") or "file"),
        )
        assets[asset_hash] = asset
        for destination in (entry.get("destinations") or {}).values():
            key = destination.get("objectKey")
            if key:
                assets[str(key)] = asset
    return assets


def _dependency_order(stacks: list[StackArtifact]) -> list[StackArtifact]:
    by_name = {s.name: s for s in stacks}
    ordered: list[StackArtifact] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(stack: StackArtifact, chain: tuple[str, ...]) -> None:
        mark = state.get(stack.name)
        if mark == 2:
            return
        if mark == 1:
            raise AssemblyError(f"stack dependency cycle: {' -> '.join((*chain, stack.name))}")
        state[stack.name] = 1
        for dependency in stack.dependencies:
            if dependency in by_name:
                visit(by_name[dependency], (*chain, stack.name))
        state[stack.name] = 2
        ordered.append(stack)

    for stack in stacks:
        visit(stack, ())
    return ordered


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssemblyError(f"{path} not found") from None
    except json.JSONDecodeError as error:
        raise AssemblyError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise AssemblyError(f"{path}: expected a JSON object")
    return data
