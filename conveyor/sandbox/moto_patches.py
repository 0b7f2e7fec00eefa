"""Every patch of moto internals the sandbox applies, in one place (each opt-in, each undoable).

- :func:`speed_up_moto_sqs`: ReceiveMessage linear again (moto's retention check is O(N²)).

Workarounds that only reshape what moto returns (no patch of its code) live where they are
used: the ``account`` of moto's EventBridge events (:func:`conveyor.sandbox.lambda_events.
eventbridge_event`), FIFO ``SequenceNumber`` s moto omits (:mod:`conveyor.sandbox.sources.sqs`),
the DLQ moves of moto's redrive policy (:mod:`conveyor.sandbox.sources.queues`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["speed_up_moto_sqs"]


def speed_up_moto_sqs() -> Callable[[], None]:
    """Make moto's SQS ReceiveMessage linear again; return a function that undoes it.

    For every message it returns, moto checks the retention period by computing every queue
    attribute four times, each a scan of the whole queue: receiving N messages costs O(N²)
    (500 messages in one queue: ~7 s in-process instead of ~0.6 s). This replaces that one
    check, process-wide (in-process ``mock_aws`` and a ``ThreadedMotoServer`` of this process),
    by the same comparison reading ``MessageRetentionPeriod`` directly. Idempotent; opt-in.
    """
    from moto.core.utils import unix_time
    from moto.sqs import models

    backend = models.SQSBackend
    original = backend.is_message_valid_based_on_retention_period
    if getattr(original, "_conveyor_fast", False):
        return lambda: None

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        retention = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if not isinstance(retention, int) or message.sent_timestamp is None:
            return bool(original(self, queue_name, message))
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    is_message_valid_based_on_retention_period._conveyor_fast = True  # type: ignore[attr-defined]
    setattr(  # noqa: B010 - replacing a method of moto's class
        backend,
        "is_message_valid_based_on_retention_period",
        is_message_valid_based_on_retention_period,
    )

    def undo() -> None:
        setattr(backend, "is_message_valid_based_on_retention_period", original)  # noqa: B010

    return undo
