"""CloudFormation custom resource: declares the RabbitMQ topology on an Amazon MQ broker
(CloudFormation has no resource for exchanges, queues and bindings).

Properties: ``ConsoleUrl`` (the broker's web console URL, where the management HTTP API
listens on 443) and ``Definitions`` (the RabbitMQ definitions document: exchanges, queues,
bindings). Create and Update POST them to ``/api/definitions`` (RabbitMQ merges: existing
objects with the same arguments are kept); Delete leaves the broker as it is (the broker is
deleted with the stack, or retained with its messages). Stdlib only (urllib, TLS verified).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from handler_kit.settings import cached_settings

from .broker import broker_credentials
from .config import DefinitionsSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
_settings = cached_settings(DefinitionsSettings)


def _post_definitions(console_url: str, definitions: dict[str, Any], secret_arn: str) -> None:
    username, password = broker_credentials(secret_arn)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    if not console_url.startswith("https://"):
        raise ValueError(f"ConsoleUrl must be https://, got {console_url!r}")
    request = urllib.request.Request(  # noqa: S310 - https only, checked above
        console_url.rstrip("/") + "/api/definitions",
        data=json.dumps(definitions).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(request, timeout=20) as answer:  # noqa: S310
        logger.info("Definitions applied", extra={"status": answer.status})


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_type = event["RequestType"]
    props = event["ResourceProperties"]
    physical_id = f"{props['ConsoleUrl']}#definitions"
    if request_type in ("Create", "Update"):
        definitions = props["Definitions"]
        if isinstance(definitions, str):
            definitions = json.loads(definitions)
        _post_definitions(props["ConsoleUrl"], definitions, _settings().secret_arn)
    return {"PhysicalResourceId": physical_id}
