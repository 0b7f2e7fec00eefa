"""AWS Lambda: functions become :class:`FunctionSpec` s (moto's Lambda needs Docker), SQS event
source mappings ``Route(kind="sqs")`` s, event invoke configs the asynchronous-invocation
settings of their function; layers and permissions are skipped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.sandbox.intrinsics import PARTITION
from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedResource, FunctionSpec, Route
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider, Skipped
from conveyor.sandbox.providers.common import POLICY_REASON
from conveyor.sandbox.providers.values import arn_service, flag, stable_uuid, text, words

_FUNCTION_ARN = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:"


def _lambda_function(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("FunctionName"))
    arn = _FUNCTION_ARN + name
    code = props.get("Code") or {}
    key = code.get("S3Key")
    if not key:
        raise ctx.unsupported(
            "Code", "only file assets (Code.S3Key of the cloud assembly) can run in the sandbox"
        )
    asset = ctx.artifact.asset_for_key(str(key))
    if asset is None:
        raise ctx.unsupported("Code.S3Key", f"{key} is not an asset of the cloud assembly")
    if not asset.path.is_dir():
        raise ctx.unsupported(
            "Code.S3Key", f"asset {asset.hash} is not a staged folder ({asset.path})"
        )
    variables = (props.get("Environment") or {}).get("Variables") or {}
    handler = props.get("Handler")
    runtime = props.get("Runtime")
    if not handler or not runtime:
        raise ctx.unsupported("Handler" if not handler else "Runtime", "required for a zip asset")
    spec = FunctionSpec(
        logical_id=ctx.logical_id,
        name=name,
        arn=arn,
        handler=str(handler),
        code_dir=asset.path,
        environment={str(k): text(v) for k, v in variables.items()},
        timeout_s=int(props.get("Timeout", 3)),
        runtime=str(runtime),
        log_group=str((props.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{name}"),
        reserved_concurrency=_optional_int(props.get("ReservedConcurrentExecutions")),
    )
    ctx.stack.functions[ctx.logical_id] = spec
    ctx.state.functions[arn] = (ctx.stack_name, ctx.logical_id)
    ctx.state.functions[name] = (ctx.stack_name, ctx.logical_id)
    return ctx.resource(name, props, Arn=arn)


def _validate_function(ctx: ProviderContext, props: Mapping[str, Any]) -> None:
    code = props.get("Code")
    if isinstance(code, dict):
        for key in code:
            if key not in ("S3Bucket", "S3Key", "S3ObjectVersion"):
                raise ctx.unsupported(
                    f"Code.{key}", "only file assets of the cloud assembly run in the sandbox"
                )


def _event_source_mapping(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    source = str(props.get("EventSourceArn", ""))
    if arn_service(source) not in ("sqs", "kinesis", "dynamodb", "mq", "kafka"):
        raise ctx.unsupported(
            "EventSourceArn",
            f"only SQS, Kinesis, DynamoDB Streams, Amazon MQ (RabbitMQ) and MSK event sources run "
            f"({source})",
        )
    if arn_service(source) == "sqs" and props.get("FilterCriteria"):
        raise ctx.unsupported(
            "FilterCriteria", "filters run on stream mappings only (Kinesis, DynamoDB Streams)"
        )
    function = ctx.function_for(str(props.get("FunctionName", "")), "FunctionName")
    mapping_id = stable_uuid(ctx.stack_name, ctx.logical_id)
    arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:event-source-mapping:{mapping_id}"
    if not flag(props.get("Enabled", True)):
        ctx.stack.skipped[ctx.logical_id] = "the event source mapping is disabled (Enabled: false)"
        return ctx.resource(mapping_id, props, Id=mapping_id, EventSourceMappingArn=arn)
    if arn_service(source) in ("kinesis", "dynamodb"):
        ctx.stack.routes.append(_kinesis_route(ctx, props, source, function.logical_id, mapping_id))
        return ctx.resource(mapping_id, props, Id=mapping_id, EventSourceMappingArn=arn)
    if arn_service(source) == "mq":
        ctx.stack.routes.append(_rabbitmq_route(ctx, props, source, function.logical_id))
        return ctx.resource(mapping_id, props, Id=mapping_id, EventSourceMappingArn=arn)
    if arn_service(source) == "kafka":
        ctx.stack.routes.append(_kafka_route(ctx, props, source, function.logical_id, mapping_id))
        return ctx.resource(mapping_id, props, Id=mapping_id, EventSourceMappingArn=arn)
    ctx.stack.routes.append(
        Route(
            kind="sqs",
            source=ctx.logical_id,
            queue_url=ctx.state.queue_url(source),
            queue_arn=source,
            function_logical_id=function.logical_id,
            batch_size=int(props.get("BatchSize", 10)),
            batching_window_s=int(props.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures"
            in (props.get("FunctionResponseTypes") or []),
            fifo=source in ctx.state.fifo_queues or source.endswith(".fifo"),
            maximum_concurrency=_optional_int(
                (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
            ),
        )
    )
    return ctx.resource(mapping_id, props, Id=mapping_id, EventSourceMappingArn=arn)


def _optional_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _kinesis_route(
    ctx: ProviderContext, props: dict[str, Any], source: str, function: str, mapping_id: str
) -> Route:
    """A Kinesis mapping (on the stream, or on an enhanced fan-out consumer of it), or a
    DynamoDB Streams mapping (on a table's stream): the same shard-poller settings."""
    dynamodb = arn_service(source) == "dynamodb"
    stream_arn = source if dynamodb else source.split("/consumer/", 1)[0]
    if dynamodb and "/stream/" not in stream_arn:
        raise ctx.unsupported("EventSourceArn", f"not a DynamoDB stream ARN ({source})")
    failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if failure and arn_service(str(failure)) not in ("s3", "sqs"):
        raise ctx.unsupported(
            "DestinationConfig.OnFailure.Destination",
            f"only S3 and SQS on-failure destinations are supported ({failure})",
        )
    timestamp = props.get("StartingPositionTimestamp")
    filters = tuple(
        text(entry.get("Pattern"))
        for entry in ((props.get("FilterCriteria") or {}).get("Filters") or [])
        if isinstance(entry, dict) and entry.get("Pattern")
    )
    table = stream_arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
    return Route(
        kind="dynamodb-streams" if dynamodb else "kinesis",
        source=ctx.logical_id,
        queue_url=f"dynamodb:{table}" if dynamodb else f"kinesis:{stream_arn.rsplit(':', 1)[-1]}",
        queue_arn=stream_arn,
        function_logical_id=function,
        batch_size=int(props.get("BatchSize", 100)),
        batching_window_s=int(props.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures"
        in (props.get("FunctionResponseTypes") or []),
        starting_position=str(props.get("StartingPosition", "LATEST")),
        starting_position_timestamp=float(timestamp) if timestamp is not None else None,
        bisect_batch_on_error=flag(props.get("BisectBatchOnFunctionError", False)),
        max_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        max_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
        on_failure_arn=str(failure) if failure else None,
        parallelization_factor=int(props.get("ParallelizationFactor", 1)),
        tumbling_window_s=int(props.get("TumblingWindowInSeconds", 0)),
        mapping_id=mapping_id,
        filters=filters,
    )


def _validate_mapping(ctx: ProviderContext, props: Mapping[str, Any]) -> None:
    """Before anything is created: filter criteria run on stream mappings only."""
    if not props.get("FilterCriteria"):
        return
    source = props.get("EventSourceArn")
    if isinstance(source, str):
        on_queue = arn_service(source) == "sqs"
    elif isinstance(source, dict) and isinstance(source.get("Fn::GetAtt"), list):
        logical = source["Fn::GetAtt"][0]
        resources = ctx.stack.template.get("Resources", {})
        on_queue = resources.get(logical, {}).get("Type") == "AWS::SQS::Queue"
    else:
        on_queue = False
    if on_queue:
        raise ctx.unsupported(
            "FilterCriteria", "filters run on stream mappings only (Kinesis, DynamoDB Streams)"
        )


def _access(props: dict[str, Any], kind: str) -> str | None:
    for entry in props.get("SourceAccessConfigurations") or []:
        if isinstance(entry, dict) and entry.get("Type") == kind:
            return str(entry.get("URI", ""))
    return None


def _rabbitmq_route(
    ctx: ProviderContext, props: dict[str, Any], broker_arn: str, function: str
) -> Route:
    """An Amazon MQ (RabbitMQ) mapping: one queue, the BASIC_AUTH secret's user."""
    from conveyor.sandbox.providers.amazonmq import local_rabbitmq

    server = local_rabbitmq(ctx)
    queues = [str(q) for q in props.get("Queues") or []]
    if len(queues) != 1:
        raise ctx.unsupported("Queues", "an Amazon MQ mapping reads exactly one queue")
    secret = _access(props, "BASIC_AUTH")
    if not secret:
        raise ctx.unsupported(
            "SourceAccessConfigurations", "a RabbitMQ mapping needs a BASIC_AUTH secret"
        )
    return Route(
        kind="rabbitmq",
        source=ctx.logical_id,
        queue_url=f"amqp://127.0.0.1:{server.port}/{queues[0]}",
        queue_arn=broker_arn,
        function_logical_id=function,
        batch_size=int(props.get("BatchSize", 100)),
        batching_window_s=int(props.get("MaximumBatchingWindowInSeconds", 0)),
        options={
            "queue": queues[0],
            "virtual_host": _access(props, "VIRTUAL_HOST") or "/",
            "secret_arn": secret,
            "port": server.port,
        },
    )


def _kafka_route(
    ctx: ProviderContext, props: dict[str, Any], cluster_arn: str, function: str, mapping_id: str
) -> Route:
    """An MSK mapping: its topic, consumer group, retries, bisect, on-failure destination."""
    servers = ctx.state.kafka_clusters.get(cluster_arn)
    if servers is None:
        raise ctx.unsupported(
            "EventSourceArn", f"{cluster_arn} is not a cluster of this deployment"
        )
    topics = [str(t) for t in props.get("Topics") or []]
    if len(topics) != 1:
        raise ctx.unsupported("Topics", "a Kafka mapping reads exactly one topic")
    group = (props.get("AmazonManagedKafkaEventSourceConfig") or {}).get("ConsumerGroupId")
    failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if failure and arn_service(str(failure)) not in ("s3", "sqs"):
        raise ctx.unsupported(
            "DestinationConfig.OnFailure.Destination",
            f"only S3 and SQS on-failure destinations are supported ({failure})",
        )
    return Route(
        kind="kafka",
        source=ctx.logical_id,
        queue_url=f"kafka:{topics[0]}",
        queue_arn=cluster_arn,
        function_logical_id=function,
        batch_size=int(props.get("BatchSize", 100)),
        batching_window_s=int(props.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures"
        in (props.get("FunctionResponseTypes") or []),
        starting_position=str(props.get("StartingPosition", "LATEST")),
        bisect_batch_on_error=flag(props.get("BisectBatchOnFunctionError", False)),
        max_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        max_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
        on_failure_arn=str(failure) if failure else None,
        mapping_id=mapping_id,
        options={
            "topic": topics[0],
            "bootstrap_servers": servers,
            "consumer_group": str(group) if group else mapping_id,
        },
    )


def _event_invoke_config(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    qualifier = str(props.get("Qualifier", "$LATEST"))
    if qualifier != "$LATEST":
        raise ctx.unsupported("Qualifier", "the sandbox runs $LATEST only")
    function = ctx.function_for(str(props.get("FunctionName", "")), "FunctionName")
    if "MaximumRetryAttempts" in props:
        function.max_retry_attempts = int(props["MaximumRetryAttempts"])
    destinations = props.get("DestinationConfig") or {}
    if destinations.get("OnSuccess"):
        raise ctx.unsupported("DestinationConfig.OnSuccess", "on-success destinations")
    failure = (destinations.get("OnFailure") or {}).get("Destination")
    if failure:
        if arn_service(str(failure)) != "sqs":
            raise ctx.unsupported(
                "DestinationConfig.OnFailure.Destination",
                f"only SQS on-failure destinations are supported ({failure})",
            )
        function.on_failure_queue_url = ctx.state.queue_url(str(failure))
    config_id = stable_uuid(ctx.stack_name, ctx.logical_id)
    return ctx.resource(config_id, props)


def _validate_destinations(ctx: ProviderContext, props: Mapping[str, Any]) -> None:
    config = props.get("DestinationConfig")
    if isinstance(config, dict):
        for key in config:
            if key not in ("OnFailure", "OnSuccess"):
                raise ctx.unsupported(f"DestinationConfig.{key}")
        if config.get("OnSuccess"):
            raise ctx.unsupported("DestinationConfig.OnSuccess", "on-success destinations")


def _skipped_function(skipped: Skipped) -> tuple[str, dict[str, str]]:
    """A custom resource provider's function (not run): its name and ARN."""
    return skipped.name, {"Arn": _FUNCTION_ARN + skipped.name}


def _skipped_layer(skipped: Skipped) -> tuple[str, dict[str, str]]:
    physical = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:layer:{skipped.name}:1"
    return physical, {"LayerVersionArn": physical}


_FUNCTION_PROPERTIES = frozenset(
    words(
        "Code Handler Runtime Timeout MemorySize Role Environment Layers LoggingConfig "
        "Architectures Description Tags FunctionName TracingConfig ReservedConcurrentExecutions "
        "EphemeralStorage RuntimeManagementConfig KmsKeyArn VpcConfig"
    )
)

_EVENT_SOURCE_MAPPING_PROPERTIES = frozenset(
    words(
        "EventSourceArn FunctionName BatchSize MaximumBatchingWindowInSeconds "
        "FunctionResponseTypes Enabled Tags ScalingConfig StartingPosition "
        "StartingPositionTimestamp BisectBatchOnFunctionError MaximumRetryAttempts "
        "MaximumRecordAgeInSeconds DestinationConfig ParallelizationFactor "
        "TumblingWindowInSeconds FilterCriteria Queues SourceAccessConfigurations Topics "
        "AmazonManagedKafkaEventSourceConfig ProvisionedPollerConfig"
    )
)

_EVENT_INVOKE_CONFIG_PROPERTIES = frozenset(
    words("FunctionName Qualifier MaximumRetryAttempts MaximumEventAgeInSeconds DestinationConfig")
)

PROVIDERS = (
    ResourceProvider(
        "AWS::Lambda::Function",
        _lambda_function,
        _FUNCTION_PROPERTIES,
        _validate_function,
        name_limit=64,
        name_property="FunctionName",
        attributes=_skipped_function,
    ),
    ResourceProvider(
        "AWS::Lambda::EventSourceMapping",
        _event_source_mapping,
        _EVENT_SOURCE_MAPPING_PROPERTIES,
        _validate_mapping,
    ),
    ResourceProvider(
        "AWS::Lambda::EventInvokeConfig",
        _event_invoke_config,
        _EVENT_INVOKE_CONFIG_PROPERTIES,
        _validate_destinations,
    ),
    ResourceProvider(
        "AWS::Lambda::LayerVersion",
        skip_reason=(
            "the sandbox runs handlers with the sandbox's own Python packages: the layer holds "
            "ARM64 wheels for Python 3.14"
        ),
        name_limit=140,
        name_property="LayerName",
        attributes=_skipped_layer,
    ),
    ResourceProvider("AWS::Lambda::Permission", skip_reason=POLICY_REASON),
)
