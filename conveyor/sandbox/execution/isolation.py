"""Process-wide plumbing that gives each in-process function its own execution environment:
output routing (:class:`StreamRouter`), private imports of its code (:class:`AliasFinder`),
a private logger namespace (:class:`PrivateLoggerManager`), Powertools' class-level metrics
and cold-start state, ``os.environ`` and ``sys.modules`` swaps.

Concurrent invocations (``Runtime(concurrency=N)``) run in threads of their own: what a handler
reads while it runs is then bound to its thread instead of swapped process-wide
(:meth:`StreamRouter.bind`, :meth:`AliasFinder.bind`, and, once :func:`install_thread_state`
ran, ``os.environ`` (:data:`ENVIRON`) and Powertools' Metrics state (:data:`METRICS`)). A
thread that bound nothing sees the process-wide state, as before."""

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
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
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
        self._local = threading.local()  # an invocation's capture, in its own thread

    def capture(self, target: TextIO) -> tuple[Any, ...]:
        """Route this thread's writes, and the process-wide ``sys.stdout`` of this moment, to
        ``target`` (a sequential invocation); return what :meth:`restore` puts back."""
        previous = (self._target, self._thread, getattr(self._local, "target", None))
        self._target, self._thread = target, threading.get_ident()
        self._local.target = target
        return previous

    def restore(self, previous: tuple[Any, ...]) -> None:
        self._target, self._thread, self._local.target = previous

    def bind(self, target: TextIO | None) -> TextIO | None:
        """Route this thread's writes only to ``target`` (a concurrent invocation); return the
        previous binding, for :meth:`bind` again."""
        previous: TextIO | None = getattr(self._local, "target", None)
        self._local.target = target
        return previous

    def _destination(self) -> TextIO | None:
        bound: TextIO | None = getattr(self._local, "target", None)
        if bound is not None:
            return bound
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
        self._current: PrivateCode | None = None
        self._local = threading.local()

    @property
    def current(self) -> PrivateCode | None:
        """The function running in this thread (a concurrent invocation's), else the one a
        sequential invocation made current process-wide."""
        if getattr(self._local, "bound", False):
            bound: PrivateCode | None = self._local.current
            return bound
        return self._current

    def activate(self, function: PrivateCode | None) -> tuple[Any, ...]:
        """``function`` runs (a sequential invocation): process-wide, and in this thread;
        return what :meth:`deactivate` puts back."""
        previous = (
            self._current,
            getattr(self._local, "bound", False),
            getattr(self._local, "current", None),
        )
        self._current = function
        self._local.bound, self._local.current = True, function
        return previous

    def deactivate(self, previous: tuple[Any, ...]) -> None:
        self._current, self._local.bound, self._local.current = previous

    def bind(self, function: PrivateCode | None) -> tuple[Any, ...]:
        """``function`` runs in this thread only (a concurrent invocation); return what
        :meth:`unbind` puts back."""
        previous = (getattr(self._local, "bound", False), getattr(self._local, "current", None))
        self._local.bound, self._local.current = True, function
        return previous

    def unbind(self, previous: tuple[Any, ...]) -> None:
        self._local.bound, self._local.current = previous

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
        if isinstance(shared, MutableMapping):
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


class _ThreadView(MutableMapping[Any, Any]):
    """A mapping that is ``base`` for every thread except those that bound their own dict."""

    def __init__(self, base: MutableMapping[Any, Any]) -> None:
        self.base = base
        self._local = threading.local()

    def view(self) -> MutableMapping[Any, Any]:
        bound: MutableMapping[Any, Any] | None = getattr(self._local, "view", None)
        return self.base if bound is None else bound

    def bind(self, view: MutableMapping[Any, Any] | None) -> MutableMapping[Any, Any] | None:
        """This thread sees ``view`` (None: ``base`` again); return the previous binding."""
        previous: MutableMapping[Any, Any] | None = getattr(self._local, "view", None)
        self._local.view = view
        return previous

    def __getitem__(self, key: Any) -> Any:
        return self.view()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.view()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.view()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.view()))

    def __len__(self) -> int:
        return len(self.view())

    def __contains__(self, key: object) -> bool:
        return key in self.view()

    def clear(self) -> None:
        self.view().clear()

    def copy(self) -> dict[Any, Any]:
        return dict(self.view())

    def __repr__(self) -> str:
        return repr(self.view())


class ThreadEnviron:
    """``os.environ`` per thread: :meth:`install` makes ``os.environ``'s storage a
    :class:`_ThreadView`, so that a concurrent invocation reads and writes its own function's
    environment (``os.environ``, ``os.getenv``, botocore, Powertools) while another runs.
    ``putenv`` (what child processes inherit) stays process-wide."""

    def __init__(self) -> None:
        self._view: _ThreadView | None = None

    def install(self) -> None:
        """Idempotent; threads that bind nothing keep the process environment."""
        data = os.environ._data  # type: ignore[attr-defined]
        if isinstance(data, _ThreadView):
            self._view = data
            return
        self._view = _ThreadView(data)
        os.environ._data = self._view  # type: ignore[attr-defined]

    def bind(self, environment: Mapping[str, str] | None) -> MutableMapping[Any, Any] | None:
        """This thread's ``os.environ`` is ``environment`` (None: the process's again);
        return the previous binding."""
        if self._view is None:
            raise RuntimeError("ThreadEnviron.install() first")
        encode_key = os.environ.encodekey
        encode_value = os.environ.encodevalue
        view = (
            None
            if environment is None
            else {encode_key(k): encode_value(v) for k, v in environment.items()}
        )
        return self._view.bind(view)

    def rebind(self, previous: MutableMapping[Any, Any] | None) -> None:
        if self._view is not None:
            self._view.bind(previous)


ENVIRON = ThreadEnviron()


class ThreadMetricsState:
    """Powertools' class-level Metrics dicts per thread: :meth:`install` replaces them by
    :class:`_ThreadView` s (before the handlers' ``Metrics`` are created, which keep a
    reference), so that two concurrent invocations do not flush each other's metrics."""

    def __init__(self) -> None:
        self._views: dict[str, _ThreadView] = {}

    def install(self) -> None:
        try:
            from aws_lambda_powertools.metrics.metrics import Metrics
        except ImportError:  # pragma: no cover - Powertools is a sandbox dependency
            return
        for name in _METRICS_STATE:
            shared = getattr(Metrics, name, None)
            if isinstance(shared, _ThreadView):
                self._views[name] = shared
            elif isinstance(shared, dict):
                self._views[name] = _ThreadView(shared)
                setattr(Metrics, name, self._views[name])

    def bind(self, state: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
        """This thread's Metrics state is ``state`` (per name, filled in place; None: the
        process's again); return the previous bindings, for :meth:`rebind`."""
        previous = {}
        for name, view in self._views.items():
            previous[name] = view.bind(None if state is None else state.setdefault(name, {}))
        return previous

    def rebind(self, previous: Mapping[str, Any]) -> None:
        for name, view in self._views.items():
            view.bind(previous.get(name))


METRICS = ThreadMetricsState()


def install_thread_state() -> None:
    """Per-thread ``os.environ`` and Powertools Metrics state, process-wide from now on
    (idempotent): what concurrent invocations need. Threads that bind nothing are unchanged."""
    ENVIRON.install()
    METRICS.install()
