"""What a running sandbox logs: every invocation (one line: source → function, records,
outcome, duration; then the handler's own log lines and, on error, its traceback) to
``.conveyor/sandbox.log`` and, as Lambda writes them, into the function's CloudWatch log group
in the sandbox (``/aws/lambda/<name>``: ``START``, the handler's lines, ``END``, ``REPORT``),
so ``aws logs tail`` / ``FilterLogEvents`` and ``conveyor logs <function>`` read them.

The runtime calls :meth:`SandboxLog.invocation` once per invocation (its ``on_invocation``
hook, in :class:`~conveyor.sandbox.sources.base.Delivery`); the delivery steps that are not
invocations (dead-letter moves, on-failure records, drops, Firehose deliveries, Step Functions
executions started by events, warnings) come through
:meth:`SandboxLog.trace` (the runtime's ``on_event``).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.sandbox.traces import InvocationResult, TraceEvent

LOGGED_TRACES = ("dead-letter", "on-failure", "drop", "deliver", "execution", "warning")


@dataclass(frozen=True)
class InvocationRecord:
    """One invocation, as the runtime hands it to ``on_invocation``."""

    source: str  # "sqs OrderEventsMapping", "events Rule", "direct"…
    function_name: str  # physical name
    function: str  # logical id
    stack: str
    records: int
    result: InvocationResult
    log_group: str = ""  # the function's (LoggingConfig.LogGroup, else /aws/lambda/<name>)

    @property
    def outcome(self) -> str:
        error = self.result.error
        if error is not None:
            return f"error {error.type}: {error.message[:200]}"
        response = self.result.response
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        if failures:
            return f"ok, {len(failures)} batch item failures"
        return "ok"

    def line(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return (
            f"{stamp} {self.source} → {self.function_name}: {self.records} records, "
            f"{self.outcome}, {self.result.duration_ms:.1f} ms"
        )


def lambda_log_lines(record: InvocationRecord) -> list[str]:
    """The log events Lambda writes for one invocation (Python runtime format)."""
    result = record.result
    request = result.request_id
    lines = [f"START RequestId: {request} Version: $LATEST"]
    # stderr holds the error line and the traceback the runtime printed, as Lambda's does.
    lines += [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    lines.append(f"END RequestId: {request}")
    lines.append(
        f"REPORT RequestId: {request}\tDuration: {result.duration_ms:.2f} ms"
        + ("\tInit: cold start" if result.cold_start else "")
    )
    return lines


class SandboxLog:
    """Writes invocations to ``path`` and to CloudWatch Logs in the sandbox.

    :param session: boto3 session for CloudWatch Logs (None: the file only).
    :param path: the log file, appended to (None: CloudWatch only).
    """

    def __init__(
        self, *, session: Any = None, endpoint_url: str | None = None, path: Path | None = None
    ) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._path = path
        self._client: Any = None
        self._streams: dict[str, str] = {}  # log group -> stream of this sandbox run
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def invocation(self, record: InvocationRecord) -> None:
        lines = [record.line()]
        output = (record.result.stdout + record.result.stderr).splitlines()
        lines += [f"    {line}" for line in output if line.strip()]  # traceback in stderr
        with self._lock:
            self._write(lines)
            self._cloudwatch(record)

    def trace(self, event: TraceEvent) -> None:
        if event.kind in LOGGED_TRACES:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.timestamp))
            with self._lock:
                self._write([f"{stamp} {event.describe()}"])

    def _write(self, lines: list[str]) -> None:
        if self._path is not None:
            with self._path.open("a") as log:
                log.write("".join(f"{line}\n" for line in lines))

    def _cloudwatch(self, record: InvocationRecord) -> None:
        if self._session is None:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        group = record.log_group or f"/aws/lambda/{record.function_name}"
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in lambda_log_lines(record)]
        try:
            stream = self._stream(group)
            self.client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        except (BotoCoreError, ClientError) as error:
            self._write([f"    (could not write to CloudWatch Logs {group}: {error})"])

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._session.client(
                "logs", region_name=self._session.region_name, endpoint_url=self._endpoint_url
            )
        return self._client

    def _stream(self, group: str) -> str:
        stream = self._streams.get(group)
        if stream is not None:
            return stream
        stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[$LATEST]{uuid.uuid4().hex}"
        with contextlib.suppress(self.client.exceptions.ResourceAlreadyExistsException):
            self.client.create_log_group(logGroupName=group)
        self.client.create_log_stream(logGroupName=group, logStreamName=stream)
        self._streams[group] = stream
        return stream
