"""Settings parsed from cdk context: environments, overrides and validation errors."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import RemovalPolicy

from conveyor.settings import Settings, SettingsError, parse_sizes
from tests.conftest import cdk_json_context


def from_context(**context: Any) -> Settings:
    return Settings.from_context(context.get)


def test_cdk_json_sandbox_destroys_and_prod_retains():
    context = cdk_json_context()
    sandbox = Settings.from_context(context.get)
    assert sandbox.environment == "sandbox"
    assert sandbox.removal_policy == RemovalPolicy.DESTROY
    prod = Settings.from_context({**context, "environment": "prod"}.get)
    assert prod.removal_policy == RemovalPolicy.RETAIN
    assert prod.thumbnail_sizes == (128, 512, 1024)


def test_top_level_context_overrides_the_environment_block():
    settings = from_context(
        environments={"sandbox": {"removal_policy": "destroy", "thumbnail_sizes": [128]}},
        thumbnail_sizes="64, 256,64",
        alarm_emails=" ops@example.com, dev@example.com",
        alarm_sms=["+33612345678"],
    )
    assert settings.thumbnail_sizes == (64, 256)
    assert settings.alarm_emails == ("ops@example.com", "dev@example.com")
    assert settings.alarm_sms == ("+33612345678",)
    assert settings.removal_policy == RemovalPolicy.DESTROY


def test_defaults_without_any_context_are_safe():
    settings = from_context()
    assert settings.removal_policy == RemovalPolicy.RETAIN
    assert settings.thumbnail_sizes == (128, 512)
    assert settings.alarm_emails == ()
    assert settings.alarm_sms == ()
    assert settings.account is None
    assert settings.region is None


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"environment": "no spaces"}, "environment 'no spaces'"),
        ({"environment": "qa", "environments": {"sandbox": {}}}, "not in cdk.json"),
        ({"removal_policy": "snapshot"}, "removal_policy must be 'destroy' or 'retain'"),
        ({"alarm_emails": "not-an-email"}, "is not an e-mail address"),
        ({"alarm_emails": {"a": 1}}, "alarm_emails must be a list"),
        ({"alarm_sms": "0612345678"}, "not an E.164 number"),
        ({"producer_accounts": "123"}, "not a 12-digit account id"),
        ({"thumbnail_sizes": "128,big"}, "'big' is not a whole number"),
        ({"thumbnail_sizes": [8]}, "outside 16–4096"),
        ({"thumbnail_sizes": {"a": 1}}, "must be a list"),
        ({"environments": ["sandbox"]}, "environments must be an object"),
    ],
)
def test_invalid_context_is_rejected_naming_the_key(context, message):
    with pytest.raises(SettingsError, match=message):
        from_context(**context)


def test_sizes_are_sorted_and_deduplicated():
    assert parse_sizes([512, 128, 512]) == (128, 512)
