"""The Lambda execution environment, in-process: :class:`ExecutionEnvironment` (a function's
private code, environment, output capture and Powertools state, and its invocation),
:class:`LambdaContext`, and the process-wide plumbing in :mod:`.isolation`."""

from conveyor.sandbox.execution.context import LambdaContext
from conveyor.sandbox.execution.environment import (
    DEFAULT_MEMORY_MB,
    FAKE_CREDENTIALS,
    ExecutionEnvironment,
    Host,
)

__all__ = ["DEFAULT_MEMORY_MB", "FAKE_CREDENTIALS", "ExecutionEnvironment", "Host", "LambdaContext"]
