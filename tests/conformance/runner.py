"""The filter conformance suite: published cases of AWS's behaviour, run against Conveyor's
matcher and, in the same run, against moto's own matchers.

Cases live in ``cases/*.json`` (our format): a file names its ``engine`` (``eventbridge`` or
``sns``), optionally an ``envelope`` merged under every event, and its ``cases``, each with a
``name``, the ``source`` it was taken from (a file and test of a public repository, or a
documentation page), the ``pattern`` (EventBridge) or ``policy`` and ``scope`` (SNS), the
``event`` / ``attributes`` / ``message``, and what AWS answered: ``expect`` is ``match``,
``no-match`` or ``invalid`` (the rule or subscription is refused). A case Conveyor knowingly
answers differently carries ``deviation``: the reason.

``python -m tests.conformance.runner`` prints the agreement table (the README's fidelity
table quotes it; ``tests/conformance/test_conformance.py`` checks that it is up to date).
``--baseline-validator PATH`` also runs an older ``filters.py`` (e.g. the main tree's) to list
the cases it refuses although AWS accepts them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from conveyor.constructs.filters import (
    FilterError,
    compile_event_pattern,
    compile_sns_filter_policy,
)
from conveyor.patterns import matches_compiled, sns_matches_compiled

CASES_DIR = Path(__file__).parent / "cases"
MATCH, NO_MATCH, INVALID = "match", "no-match", "invalid"


@dataclass(frozen=True)
class Case:
    file: str
    engine: str
    name: str
    source: str
    expect: str
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    @property
    def deviation(self) -> str | None:
        return self.data.get("deviation")


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CASES_DIR.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        engine = document["engine"]
        envelope = document.get("envelope", {})
        for raw in document["cases"]:
            data = dict(raw)
            if engine == "eventbridge":
                data["event"] = {**envelope, **raw["event"]}
            cases.append(Case(path.stem, engine, raw["name"], raw["source"], raw["expect"], data))
    return cases


# --- Conveyor ------------------------------------------------------------------------------


def conveyor_outcome(case: Case) -> str:
    try:
        if case.engine == "eventbridge":
            compiled = compile_event_pattern(case.data["pattern"])
            return MATCH if matches_compiled(compiled, case.data["event"]) else NO_MATCH
        compiled = compile_sns_filter_policy(case.data["policy"], scope=case.data["scope"])
    except FilterError:
        return INVALID
    message = case.data.get("message")
    body = json.dumps(message) if isinstance(message, dict) else message
    hit = sns_matches_compiled(compiled, attributes=case.data.get("attributes"), message=body)
    return MATCH if hit else NO_MATCH


# --- moto's own matchers (unpatched, even when the sandbox's patch is installed) -----------


def _original(owner: Any, name: str) -> Any:
    method = getattr(owner, name)
    return getattr(method, "_conveyor_original", method)


def _epoch(event: dict[str, Any]) -> dict[str, Any]:
    """The event as moto's PutEvents matches it: ``time`` as an epoch number."""
    moment = event.get("time")
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return event
        return {**event, "time": parsed.timestamp()}
    return event


def _moto_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"Type": value["DataType"], "Value": value["StringValue"]}
        for name, value in attributes.items()
    }


def moto_outcome(case: Case) -> str:
    if case.engine == "eventbridge":
        from moto.events.models import EventPattern, EventPatternParser

        raw = json.dumps(case.data["pattern"])
        try:
            parsed = _original(EventPatternParser, "parse")(EventPatternParser(raw))
        except Exception:  # moto's InvalidEventPatternException and crashes
            return INVALID
        pattern = EventPattern(raw, parsed)
        try:
            hit = _original(EventPattern, "matches_event")(pattern, _epoch(case.data["event"]))
        except Exception:  # a crash delivers nothing
            return NO_MATCH
        return MATCH if hit else NO_MATCH
    from moto.sns.models import SNSBackend
    from moto.sns.utils import FilterPolicyMatcher

    policy, scope = case.data["policy"], case.data["scope"]
    try:
        _original(SNSBackend, "_validate_filter_policy")(None, policy, scope)
    except Exception:  # SNSInvalidParameter and crashes
        return INVALID
    matcher = FilterPolicyMatcher(policy, scope)
    message = case.data.get("message")
    body = json.dumps(message) if isinstance(message, dict) else str(message)
    try:
        hit = _original(FilterPolicyMatcher, "matches")(
            matcher, _moto_attributes(case.data.get("attributes") or {}), body
        )
    except Exception:  # moto's publish crashes ($or with MessageBody)
        return "crash"
    return MATCH if hit else NO_MATCH


# --- an older validator (e.g. the main tree's constructs/filters.py) -------------------------


def load_validator(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_filters", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def validator_refuses(module: ModuleType, case: Case) -> bool:
    try:
        if case.engine == "eventbridge":
            module.validate_event_pattern(case.data["pattern"])
        else:
            module.validate_sns_filter_policy(case.data["policy"], scope=case.data["scope"])
    except ValueError:
        return True
    return False


# --- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    group: str
    cases: int
    agree: int
    deviations: int
    moto_agree: int


def _groups(cases: list[Case]) -> Iterator[tuple[str, list[Case]]]:
    for file in sorted({case.file for case in cases}):
        yield file, [case for case in cases if case.file == file]
    yield "all", cases


def measure(
    cases: list[Case],
    conveyor: Callable[[Case], str] = conveyor_outcome,
    moto: Callable[[Case], str] = moto_outcome,
) -> list[Figures]:
    ours = {case.id: conveyor(case) for case in cases}
    theirs = {case.id: moto(case) for case in cases}
    figures = []
    for group, members in _groups(cases):
        figures.append(
            Figures(
                group=group,
                cases=len(members),
                agree=sum(ours[c.id] == c.expect for c in members),
                deviations=sum(c.deviation is not None for c in members),
                moto_agree=sum(theirs[c.id] == c.expect for c in members),
            )
        )
    return figures


def table(figures: list[Figures]) -> str:
    lines = [
        "| case file | cases | Conveyor agrees | known deviations | moto's matcher agrees |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in figures:
        lines.append(
            f"| {row.group} | {row.cases} | {row.agree} | {row.deviations} | {row.moto_agree} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-validator", type=Path, help="an older filters.py to compare")
    parser.add_argument("--disagreements", action="store_true", help="list moto's wrong answers")
    args = parser.parse_args(argv)
    cases = load_cases()
    print(table(measure(cases)))
    if args.disagreements:
        print("\nmoto's matcher disagrees with AWS on:")
        for case in cases:
            got = moto_outcome(case)
            if got != case.expect:
                print(f"  {case.id}: AWS {case.expect}, moto {got}")
    if args.baseline_validator:
        module = load_validator(args.baseline_validator)
        print(f"\n{args.baseline_validator} refuses, although AWS accepts:")
        for case in cases:
            if case.expect != INVALID and validator_refuses(module, case):
                print(f"  {case.id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
