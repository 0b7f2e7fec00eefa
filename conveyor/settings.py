"""Deployment settings, parsed and validated from cdk context values.

``app.py`` reads the context and hands the raw values to :meth:`Settings.from_context`; nothing
else in Conveyor reads context or the environment. Precedence, lowest first:

1. the ``environments.<name>`` block in ``cdk.json`` selected by ``environment`` (default
   ``sandbox``);
2. a top-level context key of the same name, e.g. ``cdk synth -c alarm_emails=ops@example.com``
   or ``make synth CONTEXT="-c thumbnail_sizes=64,256"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy

KEYS = (
    "removal_policy",
    "thumbnail_sizes",
    "alarm_emails",
    "alarm_sms",
    "notification_email",
    "producer_accounts",
    "api_authorization",
    "api_waf",
    "account",
    "region",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
_REMOVAL = {"destroy": RemovalPolicy.DESTROY, "retain": RemovalPolicy.RETAIN}


class SettingsError(ValueError):
    """A context value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """What an environment deploys with.

    :ivar environment: name used in stack names (``Conveyor-<environment>-…``).
    :ivar removal_policy: DESTROY for sandboxes (buckets emptied and deleted), RETAIN otherwise.
    :ivar thumbnail_sizes: bounding boxes, in pixels, of the image pipeline's thumbnails.
    :ivar alarm_emails: subscribed to every stack's alarm topic.
    :ivar alarm_sms: E.164 phone numbers subscribed to the alarm topics by SMS.
    :ivar notification_email: subscribed to OrderPlaced events of the order topic when set.
    :ivar producer_accounts: other accounts allowed to put events on the payments bus.
    :ivar api_authorization: ``iam`` (SigV4) or ``api_key`` for the order pipeline's API.
    :ivar api_waf: attach a WAF web ACL to the order pipeline's API.
    :ivar account, region: pin the stacks to an account/region; None keeps them env-agnostic.
    """

    environment: str = "sandbox"
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    thumbnail_sizes: tuple[int, ...] = (128, 512)
    alarm_emails: tuple[str, ...] = ()
    alarm_sms: tuple[str, ...] = ()
    notification_email: str | None = None
    producer_accounts: tuple[str, ...] = ()
    api_authorization: str = "iam"
    api_waf: bool = False
    account: str | None = None
    region: str | None = None

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> Settings:
        """Build settings from a context getter (``app.node.try_get_context``)."""
        environment = str(get("environment") or "sandbox")
        if not _NAME.match(environment):
            raise SettingsError(
                f"environment {environment!r}: use letters, digits and '-', starting with a letter"
            )
        blocks = get("environments") or {}
        if not isinstance(blocks, Mapping):
            raise SettingsError("environments must be an object of per-environment settings")
        base = blocks.get(environment, {})
        if environment not in blocks and blocks:
            known = ", ".join(sorted(blocks))
            raise SettingsError(f"environment {environment!r} is not in cdk.json (known: {known})")
        values: dict[str, Any] = {key: base.get(key) for key in KEYS}
        for key in KEYS:
            override = get(key)
            if override is not None:
                values[key] = override
        return cls(
            environment=environment,
            removal_policy=_removal_policy(values["removal_policy"]),
            thumbnail_sizes=parse_sizes(values["thumbnail_sizes"]),
            alarm_emails=tuple(
                email
                for item in _items(values["alarm_emails"], "alarm_emails")
                if (email := _email(item, "alarm_emails")) is not None
            ),
            alarm_sms=_phone_numbers(values["alarm_sms"]),
            notification_email=_email(values["notification_email"], "notification_email"),
            producer_accounts=_accounts(values["producer_accounts"]),
            api_authorization=_choice(
                values["api_authorization"], "api_authorization", ("iam", "api_key"), "iam"
            ),
            api_waf=_flag(values["api_waf"], "api_waf"),
            account=_optional_str(values["account"]),
            region=_optional_str(values["region"]),
        )


def parse_sizes(value: Any) -> tuple[int, ...]:
    """Thumbnail sizes from a list or a comma-separated string; 16–4096 px, deduplicated."""
    if value is None or value == "":
        return Settings.thumbnail_sizes
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise SettingsError(f"thumbnail_sizes must be a list or '128,512' (got {value!r})")
    sizes: set[int] = set()
    for item in items:
        try:
            size = int(str(item).strip())
        except ValueError:
            raise SettingsError(f"thumbnail_sizes: {item!r} is not a whole number") from None
        if not 16 <= size <= 4096:
            raise SettingsError(f"thumbnail_sizes: {size} is outside 16–4096 pixels")
        sizes.add(size)
    if not sizes:
        raise SettingsError("thumbnail_sizes must name at least one size")
    return tuple(sorted(sizes))


def _removal_policy(value: Any) -> RemovalPolicy:
    name = str(value or "retain").lower()
    if name not in _REMOVAL:
        raise SettingsError(f"removal_policy must be 'destroy' or 'retain' (got {value!r})")
    return _REMOVAL[name]


def _email(value: Any, key: str) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    email = str(value).strip()
    if not _EMAIL.match(email):
        raise SettingsError(f"{key} {email!r} is not an e-mail address")
    return email


def _choice(value: Any, key: str, choices: tuple[str, ...], default: str) -> str:
    if value is None or value == "":
        return default
    if str(value) not in choices:
        raise SettingsError(f"{key} must be one of {', '.join(choices)} (got {value!r})")
    return str(value)


def _flag(value: Any, key: str) -> bool:
    """A boolean from JSON or from ``-c key=true``."""
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise SettingsError(f"{key} must be true or false (got {value!r})")
    return text == "true"


def _items(value: Any, key: str) -> list[Any]:
    """A list from a JSON list or a comma-separated ``-c key=a,b`` string."""
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise SettingsError(f"{key} must be a list or 'a,b' (got {value!r})")
    return list(items)


def _phone_numbers(value: Any) -> tuple[str, ...]:
    numbers = tuple(str(item).strip() for item in _items(value, "alarm_sms"))
    for number in numbers:
        if not _E164.match(number):
            raise SettingsError(f"alarm_sms: {number!r} is not an E.164 number like +33612345678")
    return numbers


def _accounts(value: Any) -> tuple[str, ...]:
    """Account ids from a list or ``"111111111111,222222222222"``; 12 digits each."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise SettingsError(f"producer_accounts must be a list of account ids (got {value!r})")
    accounts = tuple(str(item).strip() for item in items)
    for account in accounts:
        if not _ACCOUNT.match(account):
            raise SettingsError(f"producer_accounts: {account!r} is not a 12-digit account id")
    return accounts


def _optional_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
