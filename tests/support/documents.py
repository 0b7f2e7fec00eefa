"""Editing JSON documents for malformed-input tests."""

from __future__ import annotations

import json
from typing import Any

# Marks a field to remove in with_field().
DELETE = object()


def with_field(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the field at ``path`` ("order.items.0.sku") set to
    ``value``, or removed when ``value`` is DELETE."""
    copy = json.loads(json.dumps(document))
    *parents, leaf = path.split(".")
    target: Any = copy
    for parent in parents:
        target = target[int(parent)] if isinstance(target, list) else target[parent]
    key: Any = int(leaf) if isinstance(target, list) else leaf
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return copy
