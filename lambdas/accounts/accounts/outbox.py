"""Lambda handler: the outbox publisher of the accounts event store (stream → EventBridge).

See :mod:`handler_kit.outbox`: each CompteCréé / DépôtEffectué / RetraitEffectué appended to
the store is put on the accounts bus exactly as stored (source ``conveyor.accounts``,
detail-type the event type), so the read side and the subscribers react without the command
side knowing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from handler_kit.clients import lazy_client
from handler_kit.metrics import new_metrics
from handler_kit.outbox import OutboxSettings, outbox_handler
from handler_kit.settings import cached_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

logger = Logger()
metrics = new_metrics()
_settings = cached_settings(OutboxSettings)
_publish = outbox_handler(logger, metrics, _settings, lazy_client("events"))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return _publish(event, context)
