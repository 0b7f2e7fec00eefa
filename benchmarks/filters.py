"""Filter matching throughput: Conveyor's matcher against moto's, same patterns, same events,
same run (``python -m benchmarks.filters`` prints the section alone).

The workload is the conformance suite's (``tests/conformance/cases``): every EventBridge
pattern that both engines accept, each matched against every EventBridge event of the suite
(patterns × events), and likewise every SNS policy against every SNS message of its scope.
Each engine compiles a pattern once, as a rule or a subscription is created, then matches
(moto: ``EventPattern.matches_event`` and ``FilterPolicyMatcher.matches``, unpatched; Conveyor:
:func:`conveyor.patterns.matches_compiled` / ``sns_matches_compiled``). Runs are interleaved;
the figure is the median of the runs, as matches per second, and the ratio Conveyor / moto.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from conveyor.constructs.filters import (
    FilterError,
    compile_event_pattern,
    compile_sns_filter_policy,
)
from conveyor.patterns import matches_compiled, sns_matches_compiled
from tests.conformance.runner import _epoch, _moto_attributes, _original, load_cases

RUNS = 5


def _eventbridge_workload() -> tuple[Callable[[], int], Callable[[], int], int]:
    from moto.events.models import EventPattern, EventPatternParser

    parse = _original(EventPatternParser, "parse")
    moto_match = _original(EventPattern, "matches_event")
    cases = [case for case in load_cases() if case.engine == "eventbridge"]
    events = [case.data["event"] for case in cases]
    moto_events = [_epoch(event) for event in events]
    ours, theirs = [], []
    for case in cases:
        raw = json.dumps(case.data["pattern"])
        try:
            compiled = compile_event_pattern(case.data["pattern"])
            theirs.append(EventPattern(raw, parse(EventPatternParser(raw))))
        except Exception:
            continue
        ours.append(compiled)

    def conveyor() -> int:
        return sum(matches_compiled(p, e) for p in ours for e in events)

    def moto() -> int:
        return sum(moto_match(p, e) for p in theirs for e in moto_events)

    return conveyor, moto, len(ours) * len(events)


def _sns_workload() -> tuple[Callable[[], int], Callable[[], int], int]:
    from moto.sns.models import SNSBackend
    from moto.sns.utils import FilterPolicyMatcher

    validate = _original(SNSBackend, "_validate_filter_policy")
    moto_match = _original(FilterPolicyMatcher, "matches")
    cases = [case for case in load_cases() if case.engine == "sns"]
    pairs_ours: list[tuple[Any, Any, Any]] = []
    pairs_moto: list[tuple[Any, Any, Any]] = []
    for case in cases:
        scope = case.data["scope"]
        try:
            compiled = compile_sns_filter_policy(case.data["policy"], scope=scope)
            validate(None, case.data["policy"], scope)
        except Exception:
            continue
        matcher = FilterPolicyMatcher(case.data["policy"], scope)
        for other in cases:
            if other.data["scope"] != scope:
                continue
            message = other.data.get("message")
            body = json.dumps(message) if isinstance(message, dict) else str(message)
            attributes = other.data.get("attributes") or {}
            pairs_ours.append((compiled, attributes, body))
            pairs_moto.append((matcher, _moto_attributes(attributes), body))

    def conveyor() -> int:
        return sum(sns_matches_compiled(c, attributes=a, message=m) for c, a, m in pairs_ours)

    def moto() -> int:
        hits = 0
        for matcher, attributes, body in pairs_moto:
            try:
                hits += moto_match(matcher, attributes, body)
            except Exception:
                continue
        return hits

    return conveyor, moto, len(pairs_ours)


def _rate(work: Callable[[], int], count: int) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def measure() -> dict[str, tuple[int, float, float]]:
    """``{engine: (matches per run, Conveyor matches/s, moto matches/s)}`` (medians)."""
    results = {}
    for name, build in (("EventBridge", _eventbridge_workload), ("SNS", _sns_workload)):
        conveyor, moto, count = build()
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(RUNS):
            ours.append(_rate(conveyor, count))
            theirs.append(_rate(moto, count))
        results[name] = (count, statistics.median(ours), statistics.median(theirs))
    return results


def section() -> list[str]:
    """The Markdown section for ``benchmarks/results.md``."""
    print("filters: Conveyor's matcher vs moto's ...", flush=True)
    lines = [
        "",
        "## Filter matching: Conveyor's matcher vs moto's (patterns × events)",
        "",
        "The conformance suite's patterns that both engines accept × its events (SNS: policies "
        f"× messages of the same scope); compiled once, matched {RUNS} interleaved runs, "
        "medians. moto's matchers are the unpatched ones (`_conveyor_original`).",
        "",
        "| engine | matches per run | Conveyor (matches/s) | moto (matches/s) | ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (count, ours, theirs) in measure().items():
        lines.append(f"| {name} | {count:,} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")
    return lines


if __name__ == "__main__":
    try:
        print("\n".join(section()))
    except FilterError as error:  # pragma: no cover - a broken case file
        raise SystemExit(str(error)) from error
