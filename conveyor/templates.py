"""Reading synthesized templates for ``conveyor diagram`` and ``conveyor cost``.

A cloud assembly (``cdk.out``) is read through its ``manifest.json``: every
``aws:cloudformation:stack`` artifact, also inside nested assemblies (CDK stages). Nothing
here imports CDK: both commands work on any user's assembly, or on a template file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Resource suffixes CDK appends to a construct's path for its L1 resource.
_PATH_SUFFIXES = ("/Resource", "/Default")
_SUB_REF = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


@dataclass(frozen=True)
class StackTemplate:
    """One synthesized stack: its name (the artifact id) and its parsed template."""

    name: str
    template: dict[str, Any] = field(repr=False)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template.get("Resources", {})
        return resources

    def short_path(self, logical_id: str) -> str:
        """The construct path without the stack and CDK's ``/Resource`` tail, or the logical id."""
        return short_path(self.resources.get(logical_id, {}), logical_id)


def short_path(resource: dict[str, Any], logical_id: str) -> str:
    path = resource.get("Metadata", {}).get("aws:cdk:path")
    if not isinstance(path, str) or "/" not in path:
        return logical_id
    path = path.split("/", 1)[1]  # the first segment is the stack: never part of the label
    for suffix in _PATH_SUFFIXES:
        if path.endswith(suffix) and path != suffix.lstrip("/"):
            path = path[: -len(suffix)]
    return path or logical_id


def read_assembly(directory: Path) -> list[StackTemplate]:
    """Every stack of a cloud assembly, in manifest order (nested assemblies included)."""
    manifest_file = directory / "manifest.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(
            f"{directory} is not a cloud assembly (no manifest.json): run `cdk synth` first"
        )
    manifest = json.loads(manifest_file.read_text())
    stacks: list[StackTemplate] = []
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        kind = artifact.get("type")
        properties = artifact.get("properties", {})
        if kind == "aws:cloudformation:stack":
            template = json.loads((directory / properties["templateFile"]).read_text())
            _add_paths(template, _metadata(directory, artifact))
            stacks.append(StackTemplate(artifact_id, template))
        elif kind == "cdk:cloud-assembly":
            stacks.extend(read_assembly(directory / properties["directoryName"]))
    return stacks


def _metadata(directory: Path, artifact: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(artifact.get("metadata", {}))
    extra = artifact.get("additionalMetadataFile")
    if extra and (directory / extra).is_file():
        metadata.update(json.loads((directory / extra).read_text()))
    return metadata


def _add_paths(template: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Construct paths from the assembly's metadata for resources whose template lacks them.

    The CDK CLI asks for ``aws:cdk:path`` in the template; an app synthesized otherwise (a
    test's ``app.synth()``, ``cdk synth --no-path-metadata``) has it only in the manifest.
    """
    paths = {
        entry.get("data"): path.lstrip("/")
        for path, entries in metadata.items()
        for entry in entries
        if isinstance(entry, dict) and entry.get("type") == "aws:cdk:logicalId"
    }
    for logical_id, resource in template.get("Resources", {}).items():
        if logical_id in paths and "aws:cdk:path" not in resource.get("Metadata", {}):
            resource.setdefault("Metadata", {})["aws:cdk:path"] = paths[logical_id]


def load_stacks(assembly: Path, names: list[str] | None = None) -> list[StackTemplate]:
    """The selected stacks of an assembly directory, or one template file.

    A name matches a stack's artifact id exactly, or its last ``-`` separated part
    (``ImagePipeline`` selects ``Conveyor-sandbox-ImagePipeline``).
    """
    if assembly.is_file():
        stacks = [StackTemplate(assembly.name.split(".")[0], json.loads(assembly.read_text()))]
    else:
        stacks = read_assembly(assembly)
    if not names:
        return stacks
    selected: list[StackTemplate] = []
    for name in names:
        matches = [s for s in stacks if s.name == name or s.name.endswith(f"-{name}")]
        if not matches:
            known = ", ".join(s.name for s in stacks) or "none"
            raise KeyError(f"no stack {name!r} in {assembly} (stacks: {known})")
        selected.extend(m for m in matches if m not in selected)
    return selected


def references(value: Any) -> list[str]:
    """Logical ids referenced by ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` in ``value``, in order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Ref" in node and isinstance(node["Ref"], str):
                found.append(node["Ref"])
            elif "Fn::GetAtt" in node:
                target = node["Fn::GetAtt"]
                name = target[0] if isinstance(target, list) else str(target).split(".")[0]
                found.append(str(name))
            elif "Fn::Sub" in node:
                body = node["Fn::Sub"]
                text = body[0] if isinstance(body, list) else body
                if isinstance(text, str):
                    found.extend(_SUB_REF.findall(text))
                if isinstance(body, list) and len(body) > 1:
                    walk(body[1])
            else:
                for item in node.values():
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(value)
    unique: list[str] = []
    for item in found:
        if not item.startswith("AWS::") and item not in unique:
            unique.append(item)
    return unique


def first_reference(value: Any, resources: dict[str, Any]) -> str | None:
    """The first logical id of a resource of the template referenced in ``value``."""
    return next((ref for ref in references(value) if ref in resources), None)
