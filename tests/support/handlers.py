"""Importing a handler asset the way the Lambda runtime does, under its own Powertools env."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"


def use_asset(name: str, *also: Path) -> None:
    """Put the asset root ``lambdas/<name>`` (and ``also``: a test folder for its support
    module) on sys.path, so that ``import <name>.handler`` works as in Lambda."""
    for path in (LAMBDAS / name, *also):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


@contextmanager
def powertools_environment(*, service: str, namespace: str) -> Iterator[None]:
    """Powertools reads these when a handler module is imported (module-level Logger and
    Metrics): set them for the import only, so that no other asset's tests see them."""
    names = ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict(zip(names, (service, namespace), strict=True)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
