"""Order events: "order.placed" fan-out consumers and the SNS routing example handlers.

The asset root is ``lambdas/order_events/``. Handler strings:

* ``order_events.handler.handler``: SNS -> SQS -> Lambda consumer of ``OrderPlaced``, one
  deployment per ``CONSUMER_NAME`` (payment, inventory, shipping, notification);
* ``order_events.routing.invoice_handler`` / ``order_events.routing.user_handler``: SNS ->
  Lambda subscribers selected by the ``eventType`` message attribute.

Nothing here may import from outside this folder.
"""
