"""Process-wide plumbing that gives each in-process function its own execution environment:
output routing (:class:`StreamRouter`), private imports of its code (:class:`AliasFinder`),
a private logger namespace (:class:`PrivateLoggerManager`), Powertools' class-level metrics
and cold-start state, ``os.environ`` and ``sys.modules`` swaps."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import logging
import os
import sys
import threading
import types
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TextIO


class PrivateCode(Protocol):
    """What the import hook needs of a function: the private package its code is mounted as,
    and the top-level names that code owns."""

    root: str
    private_names: frozenset[str]


class StreamRouter(io.TextIOBase):
    """Installed as sys.stdout / sys.stderr during invocations. A handler created at import
    (Powertools' StreamHandler keeps the stream of that moment) therefore keeps writing into the
    capture of whichever invocation runs; writes from other threads (a moto server) pass by."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name
        self._target: TextIO | None = None
        self._thread: int | None = None

    def capture(self, target: TextIO) -> tuple[TextIO | None, int | None]:
        previous = (self._target, self._thread)
        self._target, self._thread = target, threading.get_ident()
        return previous

    def restore(self, previous: tuple[TextIO | None, int | None]) -> None:
        self._target, self._thread = previous

    def _destination(self) -> TextIO | None:
        if self._target is not None and threading.get_ident() == self._thread:
            return self._target
        current = getattr(sys, self._name)
        if current is not self:
            return current  # type: ignore[no-any-return]
        return getattr(sys, f"__{self._name}__")  # type: ignore[no-any-return]

    def write(self, text: str) -> int:
        destination = self._destination()
        if destination is not None:
            destination.write(text)
        return len(text)

    def flush(self) -> None:
        destination = self._destination()
        if destination is not None:
            destination.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


STDOUT = StreamRouter("stdout")
STDERR = StreamRouter("stderr")


class AliasLoader(importlib.abc.Loader):
    """Makes ``order_events.x`` the already imported private ``<root>.order_events.x``."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self._module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._spec  # importlib set the alias spec; keep the real one


class AliasFinder(importlib.abc.MetaPathFinder):
    """While a function runs, its top-level names resolve to its private copy of its code."""

    def __init__(self) -> None:
        self.current: PrivateCode | None = None

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        function = self.current
        if function is None or fullname.partition(".")[0] not in function.private_names:
            return None
        try:
            module = importlib.import_module(f"{function.root}.{fullname}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(function.root + "."):
                raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname) from None
            raise
        return importlib.util.spec_from_loader(
            fullname, AliasLoader(module), is_package=hasattr(module, "__path__")
        )


FINDER = AliasFinder()


class PrivateLoggerManager(logging.Manager):
    """A function's own logger namespace: Powertools' ``Logger(service=...)`` is a stdlib logger
    named after the service, which would otherwise be shared (handler, formatter, appended keys)
    by every function of that service. Loggers of importable modules (``botocore``,
    ``aws_lambda_powertools``...) stay shared."""

    def __init__(self, shared: logging.Manager, private_names: frozenset[str]) -> None:
        super().__init__(shared.root)
        self._shared = shared
        self._private_names = private_names
        self.disable = shared.disable
        self.loggerClass = shared.loggerClass
        self.logRecordFactory = shared.logRecordFactory

    def getLogger(self, name: str) -> logging.Logger:
        top = name.partition(".")[0]
        if top in sys.modules and top not in self._private_names:
            return self._shared.getLogger(name)
        return super().getLogger(name)


# Powertools keeps these at class level, shared by every Metrics instance of the process.
_METRICS_STATE = ("_metrics", "_dimensions", "_metadata", "_default_dimensions")
# Module-level cold start flags of Powertools (logger, metrics, tracer).
_COLD_START_MODULES = (
    "aws_lambda_powertools.logging.logger",
    "aws_lambda_powertools.metrics.provider.cold_start",
    "aws_lambda_powertools.metrics.base",
    "aws_lambda_powertools.tracing.tracer",
)


def swap_metrics_state(state: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Put ``state`` into Powertools' shared Metrics dicts (in place); return what was there."""
    module = sys.modules.get("aws_lambda_powertools.metrics.metrics")
    metrics_class = getattr(module, "Metrics", None)
    previous: dict[str, dict[str, Any]] = {}
    for name in _METRICS_STATE:
        shared = getattr(metrics_class, name, None)
        if isinstance(shared, dict):
            previous[name] = dict(shared)
            shared.clear()
            shared.update(state.get(name, {}))
    return previous


def set_cold_start(cold: bool) -> None:
    for name in _COLD_START_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "is_cold_start"):
            setattr(module, "is_cold_start", cold)  # noqa: B010 - not declared for mypy


def replace_environ(target: Mapping[str, str]) -> None:
    for name in [n for n in os.environ if n not in target]:
        del os.environ[name]
    for name, value in target.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def hide_modules(names: frozenset[str]) -> dict[str, types.ModuleType]:
    """Take ``names`` and their submodules out of sys.modules (fast path: none imported)."""
    if not any(name in sys.modules for name in names):
        return {}
    return {
        key: sys.modules.pop(key)
        for key in [k for k in sys.modules if k.partition(".")[0] in names]
    }


def restore_modules(names: frozenset[str], hidden: Mapping[str, types.ModuleType]) -> None:
    if any(name in sys.modules for name in names):
        for key in [k for k in sys.modules if k.partition(".")[0] in names]:
            del sys.modules[key]
    sys.modules.update(hidden)
