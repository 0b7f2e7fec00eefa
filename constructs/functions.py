"""Lambda functions with Conveyor's defaults, and the asynchronous-invocation variant.

Every function: Python 3.14 on ARM64, its own log group with a retention (JSON logs), and a
role with no managed policy — only its log group, plus what callers grant. Given a key, the
log group and the environment variables are encrypted with it (checkov CKV_AWS_158 and
CKV_AWS_173). Shared by ``QueueConsumer``, ``StreamConsumer`` and :class:`AsyncFunction`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs

from constructs import Construct
from conveyor.constructs.checkov import (
    LAMBDA_NO_RESERVED_CONCURRENCY,
    LAMBDA_NOT_IN_VPC,
    checkov_skip,
    checkov_skip_all,
)
from conveyor.constructs.defaults import (
    ARCHITECTURE,
    ASYNC_MAX_EVENT_AGE,
    ASYNC_RETRY_ATTEMPTS,
    FUNCTION_TIMEOUT,
    LOG_RETENTION,
    MEMORY_SIZE_MB,
    RUNTIME,
)
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import dead_letter_queue, new_key
from conveyor.constructs.rules import acknowledge, require, seconds


def python_function(
    scope: Construct,
    *,
    code: lambda_.Code,
    handler: str,
    timeout: Duration,
    memory_size: int = MEMORY_SIZE_MB,
    environment: Mapping[str, str] | None = None,
    layers: Sequence[lambda_.ILayerVersion] = (),
    runtime: lambda_.Runtime | None = None,
    architecture: lambda_.Architecture | None = None,
    log_retention: logs.RetentionDays = LOG_RETENTION,
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    description: str | None = None,
    id_prefix: str = "",
    encryption_key: kms.IKey | None = None,
    vpc: ec2.IVpc | None = None,
    vpc_subnets: ec2.SubnetSelection | None = None,
    security_groups: Sequence[ec2.ISecurityGroup] = (),
) -> tuple[lambda_.Function, logs.LogGroup]:
    """Create ``LogGroup``, ``Role`` and ``Function`` children of ``scope`` (ids prefixed by
    ``id_prefix``: several functions in one scope, or function ids unique in their stack,
    which the monitoring names alarms after), in ``vpc`` when given (CDK then adds
    AWSLambdaVPCAccessExecutionRole to the role, acknowledged here).

    :param encryption_key: encrypts the log group and the environment variables (the role
        may decrypt with it). Default: none (CloudWatch's and Lambda's own encryption; checkov
        then reports CKV_AWS_158 and CKV_AWS_173).
    """
    if encryption_key is not None:
        log_group = encrypted_log_group(
            scope,
            f"{id_prefix}LogGroup",
            key=encryption_key,
            retention=log_retention,
            removal_policy=removal_policy,
        )
    else:
        log_group = logs.LogGroup(
            scope, f"{id_prefix}LogGroup", retention=log_retention, removal_policy=removal_policy
        )
    role = iam.Role(
        scope,
        f"{id_prefix}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{scope.node.path}: its log group and what is granted explicitly",
    )
    log_group.grant_write(role)
    if encryption_key is not None:
        encryption_key.grant_decrypt(role)
    function = lambda_.Function(
        scope,
        f"{id_prefix}Function",
        code=code,
        handler=handler,
        runtime=runtime or RUNTIME,
        architecture=architecture or ARCHITECTURE,
        timeout=timeout,
        memory_size=memory_size,
        environment=dict(environment or {}),
        layers=list(layers),
        role=role,
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        description=description,
        environment_encryption=encryption_key,
        vpc=vpc,
        vpc_subnets=vpc_subnets,
        security_groups=list(security_groups) or None,
    )
    skips = (LAMBDA_NO_RESERVED_CONCURRENCY,) if vpc is not None else ()
    checkov_skip_all(function, skips or (LAMBDA_NOT_IN_VPC, LAMBDA_NO_RESERVED_CONCURRENCY))
    if vpc is not None:
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaVPCAccessExecutionRole]",
            "A function in a VPC needs to create and delete its network interfaces; AWS "
            "maintains this policy for exactly that (ec2:*NetworkInterface* on '*').",
        )
    return function, log_group


def acknowledge_encrypted_send(grantee: lambda_.IFunction | iam.IRole, destination: str) -> None:
    """Sending to a KMS-encrypted queue needs ``kms:GenerateDataKey*`` and ``kms:ReEncrypt*``:
    CDK's grant names these action families, on that queue's key only."""
    # jsii interfaces are protocols without runtime checks: a function is what has a role.
    role = getattr(grantee, "role", None) if hasattr(grantee, "function_arn") else grantee
    policy = role.node.try_find_child("DefaultPolicy") if role else None
    if policy is None:  # pragma: no cover - the grant creates it
        return
    for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Action::{action}]",
            f"Needed to send to {destination}; limited to that queue's key.",
        )


class AsyncFunction(Construct):
    """A Lambda function invoked asynchronously (by SNS, EventBridge, S3…), whose failed
    events end in an encrypted on-failure queue instead of being dropped after Lambda's
    retries.

    Attributes: ``function``, ``log_group``, ``failure_queue``, ``encryption_key``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        handler: str,
        timeout: Duration | None = None,
        memory_size: int = MEMORY_SIZE_MB,
        environment: Mapping[str, str] | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
        retry_attempts: int = ASYNC_RETRY_ATTEMPTS,
        max_event_age: Duration | None = None,
        encryption_key: kms.IKey | None = None,
        log_retention: logs.RetentionDays = LOG_RETENTION,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param code: the function's code. Required, with ``handler``.
        :param handler: the entry point, e.g. ``"package.module.handler"``.
        :param timeout: Default: 30 seconds.
        :param retry_attempts: Lambda's retries of a failed asynchronous event, 0–2.
            Default: 2 (Lambda's own default, made explicit).
        :param max_event_age: how long Lambda keeps retrying, 60 s–6 h. Default: 6 hours.
        :param encryption_key: key of the failure queue, the log group and the environment
            variables. Default: a new customer-managed key.
        :param removal_policy: log group, failure queue and key. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(0 <= retry_attempts <= 2, path, "retry_attempts must be between 0 and 2")
        age = max_event_age or ASYNC_MAX_EVENT_AGE
        age_s = seconds(age)
        require(
            age_s is None or 60 <= age_s <= 6 * 3600,
            path,
            "max_event_age must be between 60 seconds and 6 hours",
        )
        self.encryption_key: kms.IKey = encryption_key or new_key(
            self,
            "Key",
            description=f"Encrypts the on-failure queue of {path}",
            removal_policy=removal_policy,
        )
        self.failure_queue = dead_letter_queue(
            self, "FailureQueue", key=self.encryption_key, removal_policy=removal_policy
        )
        self.function, self.log_group = python_function(
            self,
            code=code,
            handler=handler,
            timeout=timeout or FUNCTION_TIMEOUT,
            memory_size=memory_size,
            environment=environment,
            layers=layers,
            log_retention=log_retention,
            removal_policy=removal_policy,
            encryption_key=self.encryption_key,
        )
        checkov_skip(
            self.function,
            "CKV_AWS_116",
            "Asynchronous failures go to an on-failure destination (EventInvokeConfig) on its "
            "encrypted failure queue, which keeps the whole invocation record (request, "
            "error, attempts), unlike a DeadLetterConfig.",
        )
        self.function.configure_async_invoke(
            retry_attempts=retry_attempts,
            max_event_age=age,
            on_failure=destinations.SqsDestination(self.failure_queue),
        )
        acknowledge_encrypted_send(self.function, "its KMS-encrypted on-failure queue")
