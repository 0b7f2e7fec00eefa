"""IdempotencyTable: the DynamoDB table Powertools' idempotency utility expects.

Partition key ``id`` (string), TTL attribute ``expiration``, on-demand billing, point-in-time
recovery and encryption at rest. :meth:`grant` gives a function exactly the four item actions
the ``DynamoDBPersistenceLayer`` uses, and :attr:`environment` the variable Conveyor's handlers
read (``IDEMPOTENCY_TABLE``).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam

from constructs import Construct
from conveyor.lambdas.handler_kit.handler_kit import contract as kit

ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")


class IdempotencyTable(Construct):
    """Attributes: ``table``, ``environment`` (``{"IDEMPOTENCY_TABLE": <name>}``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """:param removal_policy: of the table. Default: RETAIN."""
        super().__init__(scope, construct_id)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expiration",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            removal_policy=removal_policy,
        )
        self.environment = {kit.IDEMPOTENCY_TABLE: self.table.table_name}

    def grant(self, grantee: iam.IGrantable) -> iam.Grant:
        """Exactly the item actions of Powertools' DynamoDB persistence layer."""
        return self.table.grant(grantee, *ACTIONS)
