"""The sandbox clock: one virtual wall clock that moto, the runtime and the handlers all read.

While a :class:`~conveyor.sandbox.runtime.Runtime` is open, the process's wall clock
(``time.time``, ``time.time_ns``, ``datetime.now``/``utcnow``, ``time.gmtime``/``localtime``,
``time.strftime``, ``clock_gettime(CLOCK_REALTIME)``) is the sandbox clock, by ``time-machine``.
It ticks with real time and, when the pump has nothing to deliver, jumps instantly to the
earliest moment something becomes due (an in-flight SQS message's visibility timeout, a
``DelaySeconds`` message, an asynchronous retry, a batching window, a Firehose buffer
interval): moto's SQS visibility and retention, Powertools' idempotency expiry and the
runtime's own schedule then all see AWS's timing without waiting for it.

- ``time.monotonic`` and ``time.perf_counter`` stay real (time-machine does not patch them):
  durations in traces and benchmarks are real durations.
- The clock never goes backwards: it only runs ahead of real time (by the sum of its jumps,
  :attr:`SandboxClock.ahead_s`). Once started it stays on for the life of the process, so
  that timestamps moto stored (a message's ``visible_at``) stay consistent after a runtime
  closes and when the next one opens.
- Timestamps a user sees (trace events, ``.conveyor/sandbox.log``, CloudWatch log events,
  SQS ``SentTimestamp``) are sandbox time: after a jump they are ahead of the real clock.

API for event sources (``delivery.sandbox_clock``): :meth:`~SandboxClock.now` (epoch seconds),
:meth:`~SandboxClock.schedule` (something becomes due at an epoch second: the pump will advance
to it when idle), and the pump's :meth:`~SandboxClock.next_due` / :meth:`~SandboxClock.advance_to`.
A source may also have a ``next_due() -> float | None`` method the pump asks each idle round.
"""

from __future__ import annotations

import heapq
import threading
import time

import time_machine

__all__ = ["SandboxClock", "sandbox_clock"]


class SandboxClock:
    """The process's virtual wall clock (one per process: :func:`sandbox_clock`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traveller: time_machine.Traveller | None = None
        self._ahead_ns = 0
        self._due: list[float] = []

    # -- lifetime -----------------------------------------------------------------------------

    def start(self) -> None:
        """Make the wall clock the sandbox clock (idempotent); it ticks from real now."""
        with self._lock:
            if self._traveller is not None:
                return
            traveller = time_machine.travel(
                (time.time_ns() + self._ahead_ns) / 1e9, tick=True
            ).start()
            traveller.time_ns()  # anchor the tick now, not at the first reading
            self._traveller = traveller

    @property
    def running(self) -> bool:
        return self._traveller is not None

    # -- reading ------------------------------------------------------------------------------

    def now(self) -> float:
        """Sandbox time, epoch seconds (``time.time()`` while the clock runs)."""
        return time.time()

    def __call__(self) -> float:
        return self.now()

    @property
    def ahead_s(self) -> float:
        """How far the sandbox clock runs ahead of real time (the sum of its jumps)."""
        return self._ahead_ns / 1e9

    # -- schedule -----------------------------------------------------------------------------

    def schedule(self, due: float) -> None:
        """Something becomes due at ``due`` (epoch seconds, sandbox time): the pump advances
        the clock to it when nothing else can move. Thread-safe."""
        with self._lock:
            heapq.heappush(self._due, due)

    def next_due(self) -> float | None:
        """The earliest scheduled moment still in the future (past ones are dropped)."""
        now = self.now()
        with self._lock:
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
            return self._due[0] if self._due else None

    def advance_to(self, due: float) -> float:
        """Jump instantly to ``due`` if it is ahead (never backwards); return the jump (s)."""
        delta = due - self.now()
        if delta <= 0:
            return 0.0
        with self._lock:
            if self._traveller is None:
                raise RuntimeError("the sandbox clock is not running (SandboxClock.start)")
            delta_ns = int(delta * 1e9) + 1_000_000  # 1 ms past: `now > due` holds after it
            self._traveller.shift(delta_ns / 1e9)
            self._ahead_ns += delta_ns
        return delta_ns / 1e9


_CLOCK = SandboxClock()


def sandbox_clock() -> SandboxClock:
    """The process's sandbox clock (started by the first :class:`Runtime`)."""
    return _CLOCK
