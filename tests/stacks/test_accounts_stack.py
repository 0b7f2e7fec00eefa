"""The accounts stack: the API stage and the command/query functions in the template.

Behaviour (commands, projection, outbox) is proven in tests/sandbox/test_accounts.py; here,
the encryption, tracing and the reasons written for checkov."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.template_helpers import logical_id


@pytest.fixture(scope="module")
def accounts(synthesized):
    stack = synthesized["stacks"]["Conveyor-test-Accounts"]
    return stack, Template.from_stack(stack)


def _skips(resource: dict[str, Any]) -> dict[str, str]:
    return {skip["id"]: skip["comment"] for skip in resource["Metadata"]["checkov"]["skip"]}


def _key(reference: dict[str, Any]) -> str:
    logical: str = reference["Fn::GetAtt"][0]
    assert reference == {"Fn::GetAtt": [logical, "Arn"]}
    return logical


def test_commands_and_queries_encrypt_logs_and_variables_with_the_store_key(accounts):
    stack, template = accounts
    resources = template.to_json()["Resources"]
    store_key = logical_id(stack, "EventStore/Key")
    for path in ("Commands/CommandsFunction", "Queries/QueriesFunction"):
        properties = resources[logical_id(stack, path)]["Properties"]
        assert _key(properties["KmsKeyArn"]) == store_key, path
        group = resources[properties["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert _key(group["KmsKeyId"]) == store_key, path


def test_api_functions_say_why_they_have_no_dead_letter_queue(accounts):
    stack, template = accounts
    resources = template.to_json()["Resources"]
    for path in ("Commands/CommandsFunction", "Queries/QueriesFunction"):
        reason = _skips(resources[logical_id(stack, path)])["CKV_AWS_116"]
        assert "synchronously by the API" in reason, path


def test_the_stage_is_traced_logs_encrypted_and_not_cached_on_purpose(accounts):
    stack, template = accounts
    resources = template.to_json()["Resources"]
    stage = resources[logical_id(stack, "Api/DeploymentStage.v1")]
    assert stage["Properties"]["TracingEnabled"] is True
    assert "CacheClusterEnabled" not in stage["Properties"]
    assert "must reach the aggregate" in _skips(stage)["CKV_AWS_120"]
    access_logs = resources[logical_id(stack, "ApiAccessLogs")]["Properties"]
    assert _key(access_logs["KmsKeyId"]) == logical_id(stack, "EventStore/Key")
