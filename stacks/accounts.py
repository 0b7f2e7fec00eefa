"""Accounts (course: "Event Sourcing", "CQRS + EDA").

Commands (OpenAccount, Deposit, Withdraw) reach the command function through an API (Lambda
proxy integration, IAM auth); it rebuilds the account from the event store, lets the
aggregate decide (insufficient funds are refused), and appends the new event with a
conditional write (a stale version is a 409, never an overwrite). The store's stream feeds
the balance read model (queried by ``GET /accounts/{id}``; rebuildable from the store) and
the outbox publisher, which puts every event on the accounts bus exactly as stored; the
notification (SMS) and audit subscribers each have their own rule there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.checkov import checkov_skip
from conveyor.constructs.defaults import FUNCTION_TIMEOUT, LOG_RETENTION
from conveyor.constructs.event_router import EventRouter, Target
from conveyor.constructs.event_sourcing import EventStore, OutboxPublisher, StreamProjector
from conveyor.constructs.functions import AsyncFunction, python_function
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import allow_service_to_encrypt, new_key
from conveyor.constructs.rules import acknowledge
from conveyor.lambdas.accounts.accounts import contract
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.stacks._common import dependencies_layer, operate

ASSET = LAMBDAS_DIR / "accounts"
# A snapshot every 20 events: a load reads at most 19 events after it.
SNAPSHOT_EVERY = 20


class AccountsStack(Stack):
    """Attributes: ``store`` (EventStore), ``balances`` (StreamProjector), ``outbox``
    (OutboxPublisher), ``router`` (the accounts bus), ``api``, ``commands`` / ``queries``
    (functions), ``notifications`` / ``audit`` (AsyncFunction), ``audit_table``,
    ``notification_topic``, ``operations``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deletion_protection: bool = False,
        alarm_emails: Sequence[str] = (),
        alarm_sms: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        layer_cache_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        code = handler_code(ASSET)
        layer = dependencies_layer(self, ASSET, "Powertools for the accounts", layer_cache_dir)
        service = {
            kit.POWERTOOLS_SERVICE_NAME: "accounts",
            kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/Accounts",
        }
        self.store = EventStore(
            self,
            "EventStore",
            snapshot_every=SNAPSHOT_EVERY,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
        )

        commands = Construct(self, "Commands")
        self.commands, _ = python_function(
            commands,
            id_prefix="Commands",
            code=code,
            handler=contract.COMMANDS_HANDLER,
            timeout=FUNCTION_TIMEOUT,
            environment={**self.store.environment, **service},
            layers=[layer],
            removal_policy=removal_policy,
            description="Account commands: load the aggregate, decide, append",
            encryption_key=self.store.encryption_key,
        )
        checkov_skip(
            self.commands,
            "CKV_AWS_116",
            "Invoked synchronously by the API (Lambda proxy integration): a failed command's "
            "error is returned to the caller, who retries; there is no asynchronous event "
            "for a function DLQ to keep.",
        )
        self.store.grant_append(self.commands)
        _acknowledge_key(self.commands)

        self.balances = StreamProjector(
            self,
            "Balances",
            event_store=self.store,
            code=code,
            handler=contract.PROJECTION_HANDLER,
            rebuild_handler=contract.REBUILD_HANDLER,
            event_types=contract.EVENT_TYPES,
            environment=service,
            layers=[layer],
            removal_policy=removal_policy,
        )
        queries = Construct(self, "Queries")
        self.queries, _ = python_function(
            queries,
            id_prefix="Queries",
            code=code,
            handler=contract.QUERIES_HANDLER,
            timeout=Duration.seconds(10),
            environment={kit.READ_MODEL_TABLE: self.balances.read_model.table_name, **service},
            layers=[layer],
            removal_policy=removal_policy,
            description="Account balance queries: the read model only",
            encryption_key=self.store.encryption_key,
        )
        checkov_skip(
            self.queries,
            "CKV_AWS_116",
            "Invoked synchronously by the API (Lambda proxy integration): a failed query's "
            "error is returned to the caller; a read changes nothing, so there is nothing "
            "for a function DLQ to keep.",
        )
        self.balances.read_model.grant(self.queries, "dynamodb:GetItem")
        self.store.encryption_key.grant_decrypt(self.queries)

        self.api = _api(
            self, self.commands, self.queries, self.store.encryption_key, removal_policy
        )

        self.router = EventRouter(self, "AccountsBus", removal_policy=removal_policy)
        self.outbox = OutboxPublisher(
            self,
            "Outbox",
            event_store=self.store,
            event_bus=self.router.bus,
            source=contract.SOURCE,
            code=code,
            handler=contract.OUTBOX_HANDLER,
            environment=service,
            layers=[layer],
            removal_policy=removal_policy,
        )

        topic_key = new_key(
            self,
            "NotificationKey",
            description="Customer SMS notifications of the accounts",
            removal_policy=removal_policy,
        )
        self.notification_topic = sns.Topic(
            self, "CustomerNotifications", master_key=topic_key, enforce_ssl=True
        )
        allow_service_to_encrypt(topic_key, "sns.amazonaws.com")
        idempotency = IdempotencyTable(self, "Idempotency", removal_policy=removal_policy)
        self.notifications = AsyncFunction(
            self,
            "Notification",
            code=code,
            handler=contract.NOTIFICATION_HANDLER,
            environment={
                contract.NOTIFICATION_TOPIC_ARN: self.notification_topic.topic_arn,
                **idempotency.environment,
                **service,
            },
            layers=[layer],
            removal_policy=removal_policy,
        )
        self.notification_topic.grant_publish(self.notifications.function)
        idempotency.grant(self.notifications.function)

        self.audit_table = dynamodb.TableV2(
            self,
            "AuditLog",
            partition_key=dynamodb.Attribute(
                name=contract.AUDIT_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
        )
        self.audit = AsyncFunction(
            self,
            "Audit",
            code=code,
            handler=contract.AUDIT_HANDLER,
            environment={contract.AUDIT_TABLE: self.audit_table.table_name, **service},
            layers=[layer],
            removal_policy=removal_policy,
        )
        self.audit_table.grant(self.audit.function, "dynamodb:PutItem")

        every_event = {"source": [contract.SOURCE], "detail-type": list(contract.EVENT_TYPES)}
        self.router.add_rule(
            "NotifyCustomer",
            pattern=every_event,
            description="Notification service: an SMS per account event",
            targets=[Target.function(self.notifications.function)],
            max_event_age=Duration.hours(1),
        )
        self.router.add_rule(
            "AuditEvents",
            pattern=every_event,
            description="Audit service: every account event recorded once",
            targets=[Target.function(self.audit.function)],
        )

        for name, value in {
            "ApiUrl": self.api.url,
            "CommandsFunctionName": self.commands.function_name,
            "QueriesFunctionName": self.queries.function_name,
            "EventStoreTableName": self.store.table.table_name,
            "BalancesTableName": self.balances.read_model.table_name,
            "RebuildTableName": _required(self.balances.rebuild_table).table_name,
            "RebuildFunctionName": _required(self.balances.rebuild_function).function_name,
            "ProjectionFailureQueueUrl": self.balances.failure_queue.queue_url,
            "OutboxFailureQueueUrl": self.outbox.failure_queue.queue_url,
            "EventBusName": self.router.bus.event_bus_name,
            "DeadLetterQueueUrl": self.router.dead_letter_queue.queue_url,
            "AuditTableName": self.audit_table.table_name,
            "NotificationTopicArn": self.notification_topic.topic_arn,
            "NotificationFailureQueueUrl": self.notifications.failure_queue.queue_url,
            "AuditFailureQueueUrl": self.audit.failure_queue.queue_url,
        }.items():
            CfnOutput(self, name, value=value)
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )
        action = cw_actions.SnsAction(self.operations.alarms.topic)
        for alarm in [*self.balances.alarms, *self.outbox.alarms]:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)


def _required(value: Any) -> Any:
    assert value is not None
    return value


def _acknowledge_key(function: lambda_.Function) -> None:
    role = function.role
    policy = role.node.try_find_child("DefaultPolicy") if role else None
    if policy is None:  # pragma: no cover - the grants create it
        return
    for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Action::{action}]",
            "Writing the CMK-encrypted event store: limited to the store's key.",
        )


def _api(
    scope: Construct,
    commands: lambda_.Function,
    queries: lambda_.Function,
    key: kms.IKey,
    removal_policy: RemovalPolicy,
) -> apigateway.RestApi:
    """The accounts API: commands and the balance query, Lambda proxy integrations, IAM auth
    (SigV4), request validation, access logs (encrypted with ``key``), X-Ray tracing, stage
    throttling."""
    access_logs = encrypted_log_group(
        scope, "ApiAccessLogs", key=key, retention=LOG_RETENTION, removal_policy=removal_policy
    )
    api = apigateway.RestApi(
        scope,
        "Api",
        description="Accounts: commands (POST) and balance queries (GET)",
        endpoint_types=[apigateway.EndpointType.REGIONAL],
        cloud_watch_role=True,
        deploy_options=apigateway.StageOptions(
            stage_name="v1",
            throttling_rate_limit=50,
            throttling_burst_limit=100,
            logging_level=apigateway.MethodLoggingLevel.ERROR,
            data_trace_enabled=False,
            metrics_enabled=True,
            tracing_enabled=True,
            access_log_destination=apigateway.LogGroupLogDestination(access_logs),
            access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                caller=True,
                http_method=True,
                ip=True,
                protocol=True,
                request_time=True,
                resource_path=True,
                response_length=True,
                status=True,
                user=True,
            ),
        ),
    )
    checkov_skip(
        api.deployment_stage,
        "CKV_AWS_120",
        "No stage cache: a command must reach the aggregate every time (a cached response "
        "would acknowledge a deposit that was never appended), and a balance query reads the "
        "read model fresh, just after the caller's own command.",
    )
    validator = api.add_request_validator(
        "Validator", validate_request_body=True, validate_request_parameters=True
    )
    amount_model = api.add_model(
        "AmountRequest",
        content_type="application/json",
        model_name="AmountRequest",
        schema=apigateway.JsonSchema(
            type=apigateway.JsonSchemaType.OBJECT,
            required=[contract.AMOUNT],
            properties={
                contract.AMOUNT: apigateway.JsonSchema(
                    type=apigateway.JsonSchemaType.INTEGER, minimum=1
                ),
                contract.EXPECTED_VERSION: apigateway.JsonSchema(
                    type=apigateway.JsonSchemaType.INTEGER, minimum=0
                ),
            },
        ),
    )
    open_model = api.add_model(
        "OpenAccountRequest",
        content_type="application/json",
        model_name="OpenAccountRequest",
        schema=apigateway.JsonSchema(
            type=apigateway.JsonSchemaType.OBJECT,
            required=[contract.OWNER],
            properties={
                contract.OWNER: apigateway.JsonSchema(
                    type=apigateway.JsonSchemaType.STRING, min_length=1
                ),
                contract.PHONE: apigateway.JsonSchema(type=apigateway.JsonSchemaType.STRING),
            },
        ),
    )
    command_integration = apigateway.LambdaIntegration(commands, proxy=True)
    query_integration = apigateway.LambdaIntegration(queries, proxy=True)
    common: dict[str, Any] = {
        "authorization_type": apigateway.AuthorizationType.IAM,
        "request_validator": validator,
    }
    accounts = api.root.add_resource(contract.ACCOUNTS_RESOURCE)
    methods = [
        accounts.add_method(
            "POST",
            command_integration,
            request_models={"application/json": open_model},
            **common,
        )
    ]
    account = accounts.add_resource(f"{{{contract.ACCOUNT_ID_PARAMETER}}}")
    methods.append(account.add_method("GET", query_integration, **common))
    for resource in (contract.DEPOSITS_RESOURCE, contract.WITHDRAWALS_RESOURCE):
        methods.append(
            account.add_resource(resource).add_method(
                "POST",
                command_integration,
                request_models={"application/json": amount_model},
                **common,
            )
        )
    for method in methods:
        acknowledge(
            method,
            "AwsSolutions-COG4",
            "IAM (SigV4) authorization: callers are AWS principals, not Cognito users.",
        )
    acknowledge(
        api.deployment_stage,
        "AwsSolutions-APIG3",
        "No WAF by default: a web ACL bills even when idle; the API is IAM-authenticated "
        "and throttled per stage.",
    )
    role = api.node.try_find_child("CloudWatchRole")
    if role is not None:
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway needs to write execution logs; AWS "
            "maintains this policy for exactly that purpose.",
        )
    return api
