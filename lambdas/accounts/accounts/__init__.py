"""Accounts (course: event sourcing, CQRS + EDA): bank accounts whose state is never stored.

Commands (API Gateway → ``accounts.commands.handler``) are validated by the account aggregate
(rebuilt from its events) and appended to the event store; the store's stream feeds the
balance read model (``accounts.projection.handler``, queried by ``accounts.queries.handler``)
and the outbox publisher (``accounts.outbox.handler``) that puts each event on the bus, where
the notification and audit subscribers (``accounts.subscribers``) react.

The asset root is ``lambdas/accounts/``. Nothing here may import from outside this folder
(the handler kit is staged next to it).
"""
