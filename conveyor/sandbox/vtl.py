"""A small API Gateway mapping-template runtime: renders the real VTL of a synthesized
template with ``$input``, ``$util`` and ``$context`` behaving as API Gateway documents them
(the subset Conveyor's templates use), on airspeed, a Velocity engine for Python."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import airspeed


class JavaString(str):
    """A string with the ``java.lang.String`` methods templates call."""

    def replaceAll(self, regex: str, replacement: str) -> JavaString:
        return JavaString(re.sub(regex, replacement.replace("\\", "\\\\"), self))


def _java(value: Any) -> Any:
    if isinstance(value, str):
        return JavaString(value)
    if isinstance(value, dict):
        return {key: _java(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_java(item) for item in value]
    return value


def _walk(document: Any, path: str) -> Any:
    """``$`` / ``$.a.b`` JSONPath (the subset the templates use)."""
    if path == "$":
        return document
    value = document
    for part in path.removeprefix("$.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class Input:
    """``$input``: the request (or integration response) body and the request parameters."""

    def __init__(self, body: str, params: dict[str, str] | None = None) -> None:
        self.body = JavaString(body)
        self._params = params or {}
        try:
            self._document = json.loads(body) if body else None
        except ValueError:
            self._document = None

    def path(self, path: str) -> Any:
        value = _walk(self._document, path)
        return "" if value is None else _java(value)

    def json(self, path: str) -> str:
        return JavaString(json.dumps(_walk(self._document, path)))

    def params(self, name: str) -> str:
        return JavaString(self._params.get(name, ""))


class Util:
    """``$util``."""

    def escapeJavaScript(self, value: Any) -> JavaString:
        text = str(value)
        for old, new in (
            ("\\", "\\\\"),
            ('"', '\\"'),
            ("'", "\\'"),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
        ):
            text = text.replace(old, new)
        return JavaString(text)

    def urlEncode(self, value: Any) -> JavaString:
        return JavaString(quote(str(value), safe=""))


def render(
    template: str,
    body: str,
    params: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The rendered text and ``$context`` (e.g. ``["responseOverride"]["status"]``).

    :param context: more ``$context`` values (``requestId``, ``error.messageString``…).
    """
    context = {"responseOverride": {"status": None, "header": {}}, **(context or {})}
    output = airspeed.Template(template).merge(
        {"input": Input(body, params), "util": Util(), "context": context}
    )
    return output, context


def resolve_join(value: Any, values: dict[str, str]) -> str:
    """A template string from CloudFormation (``Fn::Join`` of literals and Refs/GetAtts),
    with each Ref/GetAtt replaced by ``values[logical id]``."""
    if isinstance(value, str):
        return value
    separator, parts = value["Fn::Join"]
    rendered = []
    for part in parts:
        if isinstance(part, str):
            rendered.append(part)
        elif "Ref" in part:
            rendered.append(values[part["Ref"]])
        else:
            rendered.append(values[part["Fn::GetAtt"][0]])
    return str(separator).join(rendered)
