"""FunctionApi: ``POST /<resource>`` on a REST API, proxied to a Lambda function (a producer
that publishes to a broker and answers 202/400/503 itself).

Secure defaults, as :class:`~conveyor.constructs.fifo_ingest_api.FifoIngestApi`: IAM (SigV4)
authorization, a JSON body validated against ``request_schema`` before the function runs,
stage throttling, JSON access logs (KMS-encrypted), error-level execution logs, X-Ray tracing
on the stage, no stage cache (every POST is a new request).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from constructs import Construct
from conveyor.constructs.checkov import checkov_skip
from conveyor.constructs.defaults import LOG_RETENTION
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import new_key
from conveyor.constructs.rules import acknowledge, require

JSON = "application/json"


class FunctionApi(Construct):
    """Attributes: ``api``, ``resource``, ``method``, ``access_log_group``,
    ``log_encryption_key``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        resource_name: str,
        request_schema: apigateway.JsonSchema,
        throttling_rate_limit: int = 50,
        throttling_burst_limit: int = 100,
        stage_name: str = "v1",
        log_retention: logs.RetentionDays = LOG_RETENTION,
        log_encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param function: the producer. Required.
        :param resource_name: the path segment (``bookings``). Required.
        :param request_schema: the JSON schema of the body (API Gateway answers 400 first).
        :param throttling_rate_limit: requests/s of the stage. Default: 50.
        :param throttling_burst_limit: Default: 100.
        :param stage_name: Default: v1.
        :param log_retention: of the access logs. Default: one month.
        :param log_encryption_key: encrypts the access log group (its policy is extended to
            let CloudWatch Logs use it). Default: a new customer-managed key.
        :param removal_policy: of the access log group (and a new key). Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(
            0 < throttling_rate_limit <= throttling_burst_limit,
            path,
            "need 0 < throttling_rate_limit <= throttling_burst_limit",
        )
        self.log_encryption_key: kms.IKey = log_encryption_key or new_key(
            self, "LogsKey", description=f"Access logs of {path}", removal_policy=removal_policy
        )
        self.access_log_group = encrypted_log_group(
            self,
            "AccessLogs",
            key=self.log_encryption_key,
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.api = apigateway.RestApi(
            self,
            "Api",
            description=f"{path}: POST /{resource_name} to a Lambda producer",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=True,
            deploy_options=apigateway.StageOptions(
                stage_name=stage_name,
                throttling_rate_limit=throttling_rate_limit,
                throttling_burst_limit=throttling_burst_limit,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_log_group),
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
            self.api.deployment_stage,
            "CKV_AWS_120",
            "A write-only API: every POST asks the producer to publish one new event and "
            "answers with its outcome; a cache would answer a new booking with an earlier "
            "booking's response and never publish it.",
        )
        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        model = self.api.add_model("RequestModel", content_type=JSON, schema=request_schema)
        self.resource = self.api.root.add_resource(resource_name)
        self.method = self.resource.add_method(
            "POST",
            apigateway.LambdaIntegration(function, proxy=True),
            authorization_type=apigateway.AuthorizationType.IAM,
            request_validator=validator,
            request_models={JSON: model},
        )
        acknowledge(
            self.method,
            "AwsSolutions-COG4",
            "Callers are services signing their requests (IAM), not Cognito users.",
        )
        acknowledge(
            self.api.deployment_stage,
            "AwsSolutions-APIG3",
            "WAF is left out of this sandbox topology: a web ACL bills even when idle, and the "
            "API is IAM-authorized and throttled per stage.",
        )
        role = self.api.node.try_find_child("CloudWatchRole")
        if role is not None:
            acknowledge(
                role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "The account-level role API Gateway needs to write execution logs; AWS "
                "maintains this policy for exactly that purpose.",
            )
