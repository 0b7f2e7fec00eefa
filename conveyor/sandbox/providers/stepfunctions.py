"""AWS Step Functions: state machines, created in moto's ASL interpreter backend.

moto runs Amazon States Language only when asked (``{"stepfunctions":
{"execute_state_machine": True}}``): the provider turns it on before it creates the first
state machine — through ``/moto-api/config`` on a moto server, through moto's user config
in-process (what ``mock_aws(config=…)`` sets). Its ``lambda:invoke`` tasks reach the
sandbox's in-process handlers (:func:`conveyor.sandbox.moto_patches.route_lambda_invocations`,
installed by the runtime); EventBridge rule targets that are state machines become
``Route(kind="stepfunctions")`` (:mod:`conveyor.sandbox.providers.events`).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from conveyor.sandbox.model import DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import add_tag_list, words

EXECUTE = {"stepfunctions": {"execute_state_machine": True}}


def enable_execution(endpoint_url: str | None) -> None:
    """Make moto execute state machines (server: its config API; in-process: its config).

    The interpreter logs every state failure, caught or not, with its whole program
    (kilobytes per failed state) at ERROR: the sandbox silences it; the execution history
    (``conveyor trace OrderFulfillment``) shows each failure with its error name and cause."""
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    if endpoint_url:
        request = urllib.request.Request(  # noqa: S310 - the local moto server
            f"{endpoint_url.rstrip('/')}/moto-api/config",
            data=json.dumps(EXECUTE).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            return
    from moto.core.config import default_user_config

    config: Any = default_user_config
    config.setdefault("stepfunctions", {}).update(EXECUTE["stepfunctions"])


def _state_machine(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    enable_execution(ctx.state.clients.endpoint_url)
    name = ctx.name(props.get("StateMachineName"))
    definition = props.get("DefinitionString")
    if not isinstance(definition, str):
        raise ctx.unsupported("DefinitionString", "a resolved JSON string is required")
    request: dict[str, Any] = {
        "name": name,
        "definition": definition,
        "roleArn": str(props.get("RoleArn", "")),
        "type": str(props.get("StateMachineType", "STANDARD")),
    }
    logging = props.get("LoggingConfiguration")
    if isinstance(logging, dict):
        request["loggingConfiguration"] = {
            "level": logging.get("Level", "OFF"),
            "includeExecutionData": bool(logging.get("IncludeExecutionData", False)),
            "destinations": [
                {
                    "cloudWatchLogsLogGroup": {
                        "logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]
                    }
                }
                for d in logging.get("Destinations", [])
                if isinstance(d, dict) and "CloudWatchLogsLogGroup" in d
            ],
        }
    tracing = props.get("TracingConfiguration")
    if isinstance(tracing, dict):
        request["tracingConfiguration"] = {"enabled": bool(tracing.get("Enabled", False))}
    add_tag_list(request, props.get("Tags"), key="tags", names=("key", "value"))
    arn = str(ctx.client("stepfunctions").create_state_machine(**request)["stateMachineArn"])
    return ctx.resource(arn, props, Arn=arn, Name=name, StateMachineRevisionId="INITIAL")


_PROPERTIES = frozenset(
    words(
        "StateMachineName DefinitionString RoleArn StateMachineType LoggingConfiguration "
        "TracingConfiguration Tags"
    )
)

PROVIDERS = (
    ResourceProvider(
        "AWS::StepFunctions::StateMachine", _state_machine, _PROPERTIES, name_limit=80
    ),
)
