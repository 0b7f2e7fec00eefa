"""Small helpers shared by the constructs: synth-time validation and nag acknowledgements.

Validation skips values that are still tokens (unresolved at synth), as CDK's own L2s do.
"""

from __future__ import annotations

from aws_cdk import Duration, Token

from constructs import IConstruct


def seconds(duration: Duration | None) -> float | None:
    """The duration in seconds, or None when absent or still a token."""
    if duration is None or Token.is_unresolved(duration.to_string()):
        return None
    return float(duration.to_milliseconds()) / 1000


def known(value: float | int | None) -> bool:
    """True when ``value`` is a concrete number (not None, not a token)."""
    return value is not None and not Token.is_unresolved(value)


def require(condition: bool, construct_path: str, message: str) -> None:
    """Raise a ``ValueError`` naming the construct when a service rule is broken."""
    if not condition:
        raise ValueError(f"{construct_path}: {message}")


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on ``scope`` with a specific reason (the public
    :func:`conveyor.review.acknowledge`, which refuses an empty reason)."""
    from conveyor.review import acknowledge as public_acknowledge

    public_acknowledge(scope, rule_id, reason)
