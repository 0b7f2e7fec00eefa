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
- The clock never goes backwards while a runtime is open: it only runs ahead of real time
  (by the sum of its jumps, :attr:`SandboxClock.ahead_s`). When the last open runtime closes,
  the wall clock is real again (the jumps end with the sandbox: a client in the same process,
  ``conveyor logs`` or a test, then reads real time, as the brokers and the other processes do).
  A timestamp that moto stored under an earlier runtime may then lie ahead of the next one's
  clock; the pump's jumps are computed from such stored moments (an in-flight message's
  visibility), so what is due still comes back.
- A timestamp stamped on the real clock outside the process (a Kafka record's ``CreateTime``
  by librdkafka or the broker) is mapped onto sandbox time by :meth:`SandboxClock.sandbox_time_of`.
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
        self._travel: time_machine.travel | None = None
        self._traveller: time_machine.Traveller | None = None
        self._users = 0
        self._ahead_ns = 0
        self._due: list[float] = []
        # (real epoch ns at the jump, the jump in ns), in order: maps a real timestamp that
        # something outside the process stamped (a broker, librdkafka) onto sandbox time.
        self._jumps: list[tuple[int, int]] = []

    # -- lifetime -----------------------------------------------------------------------------

    def start(self) -> None:
        """One more user (a :class:`~conveyor.sandbox.runtime.Runtime`): the wall clock is the
        sandbox clock until the last user :meth:`stop` s; the first user starts it at real now."""
        with self._lock:
            self._users += 1
            if self._traveller is not None:
                return
            travel = time_machine.travel(time.time_ns() / 1e9, tick=True)
            traveller = travel.start()
            traveller.time_ns()  # anchor the tick now, not at the first reading
            self._travel, self._traveller = travel, traveller

    def stop(self) -> None:
        """One user fewer; with the last one the wall clock is real again (the jumps end)."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._end()

    def reset(self) -> None:
        """Back to real time whoever still uses the clock (a test's safety net against a
        runtime that was never closed)."""
        with self._lock:
            self._users = 0
            self._end()

    def _end(self) -> None:
        if self._travel is not None:
            self._travel.stop()
        self._travel = self._traveller = None
        self._ahead_ns = 0
        self._due.clear()
        self._jumps.clear()

    @property
    def running(self) -> bool:
        return self._traveller is not None

    # -- reading ------------------------------------------------------------------------------

    def now(self) -> float:
        """Sandbox time, epoch seconds (``time.time()`` while the clock runs)."""
        return time.time()

    def __call__(self) -> float:
        return self.now()

    @staticmethod
    def real_now() -> float:
        """Real wall-clock time, epoch seconds (what brokers and C libraries stamp)."""
        if time_machine.escape_hatch.is_travelling():
            return time_machine.escape_hatch.time.time()
        return time.time()

    def sandbox_time_of(self, real_epoch_s: float) -> float:
        """The sandbox time of a moment stamped on the real clock (a Kafka record's
        ``CreateTime`` stamped by librdkafka or the broker): the real moment plus the jumps
        made before it, so its age on the sandbox clock counts the jumps made since."""
        real_ns = int(real_epoch_s * 1e9)
        with self._lock:
            ahead = sum(delta for at, delta in self._jumps if at <= real_ns)
        return (real_ns + ahead) / 1e9

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
            self._jumps.append((int(self.real_now() * 1e9), delta_ns))
        return delta_ns / 1e9


_CLOCK = SandboxClock()


def sandbox_clock() -> SandboxClock:
    """The process's sandbox clock (started by the first :class:`Runtime`)."""
    return _CLOCK
