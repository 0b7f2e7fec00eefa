"""Retry with exponential back-off and full jitter, for producers whose broker may be down.

``delay(retry)`` is uniform in [0, min(max_delay, base × 2^retry)) (AWS Architecture Blog's
"full jitter"); :func:`retry` calls ``attempt`` up to ``attempts`` times, sleeping between,
retrying only the exceptions ``retry_on`` says are transient, and re-raises the last error
(never a silent give-up). ``on_retry(retry, delay, error)`` sees each retry (log, metric).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 5
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")

    def ceiling(self, retry: int) -> float:
        """The upper bound of the ``retry``-th wait (0-based)."""
        return min(self.max_delay_s, self.base_delay_s * 2.0**retry)

    def delay(self, retry: int, jitter: Callable[[], float] = random.random) -> float:
        return jitter() * self.ceiling(retry)


def retry(
    attempt: Callable[[], T],
    backoff: Backoff,
    *,
    retry_on: Callable[[Exception], bool],
    on_retry: Callable[[int, float, Exception], None] = lambda *_: None,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    for number in range(backoff.attempts):
        try:
            return attempt()
        except Exception as error:
            if number + 1 >= backoff.attempts or not retry_on(error):
                raise
            wait = backoff.delay(number, jitter)
            on_retry(number + 1, wait, error)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
