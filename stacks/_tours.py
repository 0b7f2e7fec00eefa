"""What the two tour-booking stacks (RabbitMQ, Kafka) share: the course's booking request
schema, the notifications table, and the consumer environment."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR
from conveyor.lambdas.tours.tours import contract

ASSET = LAMBDAS_DIR / "tours"

_TEXT = apigateway.JsonSchema(type=apigateway.JsonSchemaType.STRING, min_length=1, max_length=128)

BOOKING_SCHEMA = apigateway.JsonSchema(
    schema=apigateway.JsonSchemaVersion.DRAFT4,
    title="TourBooking",
    type=apigateway.JsonSchemaType.OBJECT,
    required=list(contract.BOOKING_FIELDS),
    properties={
        contract.BOOKING_ID: _TEXT,
        contract.TOUR_ID: _TEXT,
        contract.USER_ID: _TEXT,
        contract.BOOKING_DATE: _TEXT,
        contract.STATUS: _TEXT,
        contract.TOTAL_PRICE: apigateway.JsonSchema(
            type=apigateway.JsonSchemaType.NUMBER, minimum=0
        ),
        contract.TIER: apigateway.JsonSchema(
            type=apigateway.JsonSchemaType.STRING, enum=list(contract.TIERS)
        ),
        contract.EVENT_TYPE_FIELD: apigateway.JsonSchema(
            type=apigateway.JsonSchemaType.STRING, enum=list(contract.EVENT_TYPES)
        ),
    },
)


def notifications_table(scope: Construct, removal_policy: RemovalPolicy) -> dynamodb.TableV2:
    return dynamodb.TableV2(
        scope,
        "Notifications",
        partition_key=dynamodb.Attribute(
            name=contract.NOTIFICATIONS_KEY, type=dynamodb.AttributeType.STRING
        ),
        billing=dynamodb.Billing.on_demand(),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
        removal_policy=removal_policy,
    )
