"""Order pipeline: API Gateway -> SQS FIFO (one message group per customer) -> Lambda ->
DynamoDB orders table (state machine created -> paid -> shipped).

The asset root is ``lambdas/order_pipeline/``. Handler string: ``order_pipeline.handler.handler``.

Nothing here may import from outside this folder.
"""
