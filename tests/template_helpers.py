"""Helpers shared by the template-assertion tests."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk.assertions import Match


def logical_id(stack: Stack, path: str) -> str:
    """Logical ID of the CFN resource behind the construct at ``path`` ("A/B/C") in ``stack``."""
    parts = path.split("/")
    construct = stack.node.find_child(parts[0])
    for part in parts[1:]:
        construct = construct.node.find_child(part)
    return stack.get_logical_id(construct.node.default_child)  # type: ignore[arg-type]


def deny_insecure_transport(action: str) -> Any:
    """Matcher for a resource policy holding the TLS-only deny statement on ``action``."""
    return {
        "Statement": Match.array_with(
            [
                Match.object_like(
                    {
                        "Effect": "Deny",
                        "Action": action,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                )
            ]
        )
    }
