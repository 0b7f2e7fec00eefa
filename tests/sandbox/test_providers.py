"""The resource-provider registry: one registration per resource type."""

from __future__ import annotations

import pytest

from conveyor.sandbox.deployer import SKIP_REASONS, skip_reason, supported_types
from conveyor.sandbox.providers import REGISTRY, ProviderRegistry, ResourceProvider
from conveyor.sandbox.providers.base import Skipped


def test_every_created_type_declares_its_properties() -> None:
    for resource_type in REGISTRY.created_types():
        provider = REGISTRY.creator(resource_type)
        assert provider is not None
        assert provider.properties, resource_type


def test_a_type_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        ProviderRegistry([ResourceProvider("AWS::X::Y"), ResourceProvider("AWS::X::Y")])


def test_a_service_prefix_gives_its_types_a_skip_reason() -> None:
    assert skip_reason("AWS::ApiGateway::Method") == skip_reason("AWS::ApiGateway::RestApi")
    assert skip_reason("AWS::ApiGateway::Method") is not None
    assert "AWS::ApiGateway::Method" not in SKIP_REASONS
    assert skip_reason("AWS::Unknown::Thing") is None
    assert supported_types()["AWS::SQS::Queue"] == "created"
    assert supported_types()["AWS::IAM::Role"] == SKIP_REASONS["AWS::IAM::Role"]


def test_name_limits_come_from_the_providers() -> None:
    assert REGISTRY.name_limit("AWS::SQS::Queue") == 80
    assert REGISTRY.name_limit("AWS::S3::Bucket") == 63
    assert REGISTRY.name_limit("AWS::Unknown::Thing") == 255


def test_synthetic_ids_of_skipped_types() -> None:
    def skipped(resource_type: str) -> Skipped:
        return Skipped("S", "Lid", resource_type, "name", "0123456789")

    assert REGISTRY.synthetic(skipped("AWS::IAM::Policy")) == ("name", {})
    assert REGISTRY.synthetic(skipped("AWS::SQS::QueuePolicy")) == ("name-0123456789", {})
    assert REGISTRY.synthetic(skipped("Custom::Thing")) == ("name", {})
    assert REGISTRY.synthetic(skipped("AWS::ApiGateway::Deployment")) == (
        "012345",
        {"DeploymentId": "012345"},
    )
