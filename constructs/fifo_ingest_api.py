"""FifoIngestApi: a REST API whose POST sends the request straight to an SQS FIFO queue.

No Lambda in the ingest path: API Gateway validates the body against a JSON-schema model, then
its AWS integration calls SQS ``SendMessage`` (AWS JSON 1.0 protocol) with

- ``MessageGroupId`` from a configurable body field (order per group — the course's customer),
- ``MessageDeduplicationId`` from the ``Idempotency-Key`` header when present, else from body
  fields joined with ``-`` (e.g. ``orderId-event``): a client retry within SQS's 5-minute
  deduplication window is accepted again but enqueued once,

and answers ``202 {"messageId", "sequenceNumber", "status": "accepted"}``. Errors are mapped:
an invalid body → 400 with the validation errors; the queue rejecting a parameter → 400; an
integration misconfiguration (403/404 from SQS) → 500 without details; SQS unavailable or
throttling → 503 with ``Retry-After``.

Secure defaults: IAM (SigV4) authorization, or an API key with a usage plan; stage throttling;
JSON access logs (KMS-encrypted) and ERROR-level execution logs (never request bodies); X-Ray
tracing on the stage; optional WAF with AWS managed rules and a per-IP rate limit.
:meth:`add_lookup` adds ``GET /<resource>/{id}`` reading one item from DynamoDB, also without
Lambda.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_wafv2 as wafv2

from constructs import Construct
from conveyor.constructs.checkov import checkov_skip
from conveyor.constructs.defaults import LOG_RETENTION
from conveyor.constructs.functions import acknowledge_encrypted_send
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import new_key
from conveyor.constructs.rules import acknowledge, require

AUTHORIZATIONS = ("iam", "api_key")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
JSON = "application/json"

# VTL, rendered by API Gateway. $util.escapeJavaScript escapes ' as \' (invalid in JSON): the
# replaceAll undoes it. Every value placed in the JSON document is escaped.
SEND_MESSAGE_TEMPLATE = """#set($group = $input.path('$.{group_field}'))
#set($key = $input.params('{header}'))
#if("$!key" != "")
#set($dedup = $key)
#else
#set($dedup = "{dedup_expression}")
#end
{{
  "QueueUrl": "{queue_url}",
  "MessageBody": "$util.escapeJavaScript($input.body).replaceAll("\\\\'", "'")",
  "MessageGroupId": "$util.escapeJavaScript("$group").replaceAll("\\\\'", "'")",
  "MessageDeduplicationId": "$util.escapeJavaScript("$dedup").replaceAll("\\\\'", "'")"
}}"""

ACCEPTED_TEMPLATE = """{
  "messageId": "$input.path('$.MessageId')",
  "sequenceNumber": "$input.path('$.SequenceNumber')",
  "status": "accepted"
}"""

REJECTED_TEMPLATE = """{
  "message": "The queue rejected the message",
  "reason": "$util.escapeJavaScript($input.path('$.message')).replaceAll("\\\\'", "'")"
}"""

MISCONFIGURED_TEMPLATE = '{"message": "Internal error: the request was not accepted"}'
UNAVAILABLE_TEMPLATE = '{"message": "Temporarily unavailable: retry with the same Idempotency-Key"}'


def send_message_template(
    *, queue_url: str, group_field: str, dedup_fields: Sequence[str], header: str
) -> str:
    """The integration request template (kept public so tests can render the real one)."""
    dedup = "-".join(f"$input.path('$.{name}')" for name in dedup_fields)
    return SEND_MESSAGE_TEMPLATE.format(
        group_field=group_field, header=header, dedup_expression=dedup, queue_url=queue_url
    )


class FifoIngestApi(Construct):
    """``POST /<resource_name>`` → SQS FIFO ``SendMessage``.

    Attributes: ``api`` (RestApi), ``resource``, ``role`` (assumed by API Gateway),
    ``access_log_group``, ``api_key`` and ``usage_plan`` (API-key mode), ``web_acl`` (or None).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue: sqs.IQueue,
        request_schema: apigateway.JsonSchema,
        resource_name: str = "orders",
        group_id_field: str = "customerId",
        deduplication_fields: Sequence[str] = ("orderId",),
        idempotency_header: str = "Idempotency-Key",
        authorization: str = "iam",
        throttling_rate_limit: int = 50,
        throttling_burst_limit: int = 100,
        quota_per_day: int | None = None,
        waf: bool = False,
        waf_rate_limit_per_5_minutes: int = 1000,
        stage_name: str = "v1",
        log_retention: logs.RetentionDays = LOG_RETENTION,
        log_encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param queue: a FIFO queue (e.g. ``QueueConsumer(fifo=True).queue``). Required.
        :param request_schema: JSON schema of the body (draft 4, API Gateway models); it must
            require ``group_id_field`` and every deduplication field.
        :param resource_name: the path, ``/orders`` by default.
        :param group_id_field: top-level body field used as ``MessageGroupId``.
            Default: ``customerId`` (orders of one customer stay in order).
        :param deduplication_fields: body fields joined with ``-`` as
            ``MessageDeduplicationId`` when no idempotency header is sent. Default: orderId.
        :param idempotency_header: request header that overrides the deduplication id.
        :param authorization: ``"iam"`` (SigV4, default) or ``"api_key"`` (+ usage plan).
        :param throttling_rate_limit: steady requests per second for the stage. Default: 50.
        :param throttling_burst_limit: burst. Default: 100.
        :param quota_per_day: API-key mode: requests per key per day. Default: none.
        :param waf: attach a WAFv2 web ACL (AWS common and known-bad-inputs rules, per-IP
            rate limit). Default: off (a web ACL costs money even when idle).
        :param waf_rate_limit_per_5_minutes: per-IP limit of the WAF rate rule. Default: 1000.
        :param stage_name: Default: ``v1``.
        :param log_retention: access logs. Default: one month.
        :param log_encryption_key: encrypts the access log group. Default: the queue's key
            (``queue.encryption_master_key``), else a new customer-managed key.
        :param removal_policy: access log group. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        dedup_fields = list(deduplication_fields)
        self._validate(
            path,
            queue=queue,
            schema=request_schema,
            resource_name=resource_name,
            fields=[group_id_field, *dedup_fields],
            dedup_fields=dedup_fields,
            authorization=authorization,
            rate=throttling_rate_limit,
            burst=throttling_burst_limit,
        )
        self._authorization = authorization

        logs_key = (
            log_encryption_key
            or queue.encryption_master_key
            or new_key(
                self, "LogsKey", description=f"Access logs of {path}", removal_policy=removal_policy
            )
        )
        self.access_log_group = encrypted_log_group(
            self, "AccessLogs", key=logs_key, retention=log_retention, removal_policy=removal_policy
        )
        self.api = apigateway.RestApi(
            self,
            "Api",
            description=f"{path}: POST /{resource_name} to an SQS FIFO queue",
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
            "A write-only ingest API (POST to an SQS FIFO queue): every response acknowledges "
            "one request; a cache would answer a new order with an earlier order's MessageId.",
        )
        self._add_gateway_responses()
        self.role = iam.Role(
            self,
            "IntegrationRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description=f"{path}: send to its queue (and read its lookup table)",
        )
        queue.grant_send_messages(self.role)
        acknowledge_encrypted_send(self.role, "its KMS-encrypted FIFO queue")
        self.validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        model = self.api.add_model(
            "RequestModel", content_type=JSON, schema=request_schema, model_name="IngestRequest"
        )
        self.resource = self.api.root.add_resource(resource_name)
        post = self.resource.add_method(
            "POST",
            apigateway.AwsIntegration(
                service="sqs",
                path="/",
                integration_http_method="POST",
                options=apigateway.IntegrationOptions(
                    credentials_role=self.role,
                    passthrough_behavior=apigateway.PassthroughBehavior.NEVER,
                    request_parameters={
                        "integration.request.header.Content-Type": "'application/x-amz-json-1.0'",
                        "integration.request.header.X-Amz-Target": "'AmazonSQS.SendMessage'",
                    },
                    request_templates={
                        JSON: send_message_template(
                            queue_url=queue.queue_url,
                            group_field=group_id_field,
                            dedup_fields=dedup_fields,
                            header=idempotency_header,
                        )
                    },
                    integration_responses=[
                        apigateway.IntegrationResponse(
                            status_code="202", response_templates={JSON: ACCEPTED_TEMPLATE}
                        ),
                        apigateway.IntegrationResponse(
                            status_code="400",
                            selection_pattern="400",
                            response_templates={JSON: REJECTED_TEMPLATE},
                        ),
                        apigateway.IntegrationResponse(
                            status_code="500",
                            selection_pattern="403|404",
                            response_templates={JSON: MISCONFIGURED_TEMPLATE},
                        ),
                        apigateway.IntegrationResponse(
                            status_code="503",
                            selection_pattern="5\\d{2}|429",
                            response_parameters={"method.response.header.Retry-After": "'5'"},
                            response_templates={JSON: UNAVAILABLE_TEMPLATE},
                        ),
                    ],
                ),
            ),
            authorization_type=self._authorization_type(),
            api_key_required=authorization == "api_key",
            request_validator=self.validator,
            request_models={JSON: model},
            request_parameters={f"method.request.header.{idempotency_header}": False},
            method_responses=[
                apigateway.MethodResponse(status_code="202"),
                apigateway.MethodResponse(status_code="400"),
                apigateway.MethodResponse(status_code="500"),
                apigateway.MethodResponse(
                    status_code="503",
                    response_parameters={"method.response.header.Retry-After": True},
                ),
            ],
        )

        self.api_key: apigateway.IApiKey | None = None
        self.usage_plan: apigateway.UsagePlan | None = None
        if authorization == "api_key":
            self.usage_plan = self.api.add_usage_plan(
                "UsagePlan",
                throttle=apigateway.ThrottleSettings(
                    rate_limit=throttling_rate_limit, burst_limit=throttling_burst_limit
                ),
                quota=apigateway.QuotaSettings(limit=quota_per_day, period=apigateway.Period.DAY)
                if quota_per_day
                else None,
            )
            self.usage_plan.add_api_stage(stage=self.api.deployment_stage)
            self.api_key = self.api.add_api_key("ApiKey")
            self.usage_plan.add_api_key(self.api_key)

        self.web_acl: wafv2.CfnWebACL | None = None
        if waf:
            self.web_acl = self._web_acl(waf_rate_limit_per_5_minutes)
        else:
            acknowledge(
                self.api.deployment_stage,
                "AwsSolutions-APIG3",
                "WAF is optional (waf=True): a web ACL bills even when idle, and the API is "
                "already authenticated and throttled per stage.",
            )
        self._acknowledge_method(post)
        role = self.api.node.try_find_child("CloudWatchRole")
        if role is not None:
            acknowledge(
                role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "The account-level role API Gateway needs to write execution logs; AWS "
                "maintains this policy for exactly that purpose.",
            )

    # -- GET /<resource>/{id} ------------------------------------------------------------

    def add_lookup(
        self,
        *,
        table: dynamodb.ITable,
        key_name: str,
        fields: Mapping[str, str],
        path_parameter: str = "id",
    ) -> apigateway.Resource:
        """``GET /<resource>/{id}``: DynamoDB ``GetItem`` (consistent read) rendered as JSON.

        :param fields: attribute name → DynamoDB type (``"S"`` or ``"N"``) to return; absent
            attributes come back as ``null``. An unknown id answers 404.
        """
        path = f"{self.node.path}/lookup"
        require(bool(fields), path, "fields must name at least one attribute")
        for name, kind in fields.items():
            require(bool(_FIELD.match(name)), path, f"invalid attribute name {name!r}")
            require(kind in ("S", "N"), path, f"{name}: type must be 'S' or 'N' (got {kind!r})")
        table.grant(self.role, "dynamodb:GetItem")
        item = self.resource.add_resource(f"{{{path_parameter}}}")
        get = item.add_method(
            "GET",
            apigateway.AwsIntegration(
                service="dynamodb",
                action="GetItem",
                integration_http_method="POST",
                options=apigateway.IntegrationOptions(
                    credentials_role=self.role,
                    passthrough_behavior=apigateway.PassthroughBehavior.NEVER,
                    request_templates={
                        JSON: get_item_template(
                            table_name=table.table_name,
                            key_name=key_name,
                            path_parameter=path_parameter,
                        )
                    },
                    integration_responses=[
                        apigateway.IntegrationResponse(
                            status_code="200",
                            response_templates={JSON: item_response_template(fields)},
                        ),
                        apigateway.IntegrationResponse(
                            status_code="500",
                            selection_pattern="4\\d{2}",
                            response_templates={JSON: MISCONFIGURED_TEMPLATE},
                        ),
                        apigateway.IntegrationResponse(
                            status_code="503",
                            selection_pattern="5\\d{2}",
                            response_templates={JSON: UNAVAILABLE_TEMPLATE},
                        ),
                    ],
                ),
            ),
            authorization_type=self._authorization_type(),
            api_key_required=self._authorization == "api_key",
            request_validator=self.validator,
            request_parameters={f"method.request.path.{path_parameter}": True},
            method_responses=[
                apigateway.MethodResponse(status_code=code) for code in ("200", "404", "500", "503")
            ],
        )
        self._acknowledge_method(get)
        return item

    # -- internals -------------------------------------------------------------------------

    def _authorization_type(self) -> apigateway.AuthorizationType:
        if self._authorization == "iam":
            return apigateway.AuthorizationType.IAM
        return apigateway.AuthorizationType.NONE

    def _add_gateway_responses(self) -> None:
        self.api.add_gateway_response(
            "BadRequestBody",
            type=apigateway.ResponseType.BAD_REQUEST_BODY,
            status_code="400",
            templates={
                JSON: '{"message": "Invalid request body", '
                '"errors": "$context.error.validationErrorString"}'
            },
        )
        self.api.add_gateway_response(
            "Default4xx",
            type=apigateway.ResponseType.DEFAULT_4_XX,
            # messageString is already a quoted JSON string (API Gateway's own default).
            templates={JSON: '{"message": $context.error.messageString}'},
        )
        self.api.add_gateway_response(
            "Default5xx",
            type=apigateway.ResponseType.DEFAULT_5_XX,
            templates={JSON: '{"message": "Internal error"}'},
        )

    def _web_acl(self, rate_limit: int) -> wafv2.CfnWebACL:
        def managed(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=name
                    )
                ),
                visibility_config=_visibility(name),
            )

        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("IngestApi"),
            rules=[
                managed("AWSManagedRulesCommonRuleSet", 0),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 1),
                wafv2.CfnWebACL.RuleProperty(
                    name="RatePerIp",
                    priority=2,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP"
                        )
                    ),
                    visibility_config=_visibility("RatePerIp"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.api.deployment_stage.stage_arn,
            web_acl_arn=acl.attr_arn,
        )
        return acl

    def _acknowledge_method(self, method: apigateway.Method) -> None:
        acknowledge(
            method,
            "AwsSolutions-COG4",
            "Callers are services, not Cognito users: they sign requests (IAM) or present an "
            "API key bound to a usage plan.",
        )
        if self._authorization == "api_key":
            acknowledge(
                method,
                "AwsSolutions-APIG4",
                "authorization='api_key': each caller holds a key bound to a throttled usage "
                "plan; use authorization='iam' for SigV4-signed calls.",
            )

    @staticmethod
    def _validate(
        path: str,
        *,
        queue: sqs.IQueue,
        schema: apigateway.JsonSchema,
        resource_name: str,
        fields: Sequence[str],
        dedup_fields: Sequence[str],
        authorization: str,
        rate: int,
        burst: int,
    ) -> None:
        require(queue.fifo, path, "the queue must be a FIFO queue (order per message group)")
        require(
            bool(_NAME.match(resource_name)),
            path,
            f"resource_name {resource_name!r}: lowercase letters, digits and '-'",
        )
        require(bool(dedup_fields), path, "deduplication_fields must name at least one field")
        required = set(schema.required or [])
        for name in fields:
            require(bool(_FIELD.match(name)), path, f"invalid field name {name!r}")
            require(
                name in required,
                path,
                f"the request schema must require {name!r}: it feeds the message group or "
                "deduplication id",
            )
        require(
            authorization in AUTHORIZATIONS,
            path,
            f"authorization must be one of {', '.join(AUTHORIZATIONS)} (got {authorization!r})",
        )
        require(1 <= rate <= 10_000, path, "throttling_rate_limit must be 1–10000")
        require(
            rate <= burst <= 5_000,
            path,
            "throttling_burst_limit must be at least throttling_rate_limit and at most 5000",
        )


def get_item_template(*, table_name: str, key_name: str, path_parameter: str) -> str:
    """The GetItem integration request template."""
    return (
        "{"
        f'"TableName": "{table_name}", '
        f'"Key": {{"{key_name}": {{"S": "$util.escapeJavaScript($input.params('
        f"'{path_parameter}'))\"}}}}, "
        '"ConsistentRead": true'
        "}"
    )


def item_response_template(fields: Mapping[str, str]) -> str:
    """Renders the item's ``fields`` as JSON, ``null`` when absent; 404 when no item."""
    lines = []
    for name, kind in fields.items():
        if kind == "S":
            value = (
                f'#if("$!item.{name}.S" != "")'
                f'"$util.escapeJavaScript($item.{name}.S).replaceAll("\\\\\'", "\'")"'
                "#{else}null#end"
            )
        else:
            value = f'#if("$!item.{name}.N" != "")$item.{name}.N#{{else}}null#end'
        lines.append(f'  "{name}": {value}')
    body = ",\n".join(lines)
    return (
        "#set($item = $input.path('$.Item'))\n"
        '#if("$!item" == "")\n'
        "#set($context.responseOverride.status = 404)\n"
        '{"message": "Not found"}\n'
        "#else\n"
        "{\n" + body + "\n}\n"
        "#end"
    )


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )
