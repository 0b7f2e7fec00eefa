"""The CDK's own resource: usage metadata, skipped."""

from conveyor.sandbox.providers.base import ResourceProvider

PROVIDERS = (
    ResourceProvider("AWS::CDK::Metadata", skip_reason="CDK's usage metadata, not a resource"),
)
