"""Payments: EventBridge targets of the custom payments bus.

The asset root is ``lambdas/payments/``; the high-value review handler string is
``payments.review.handler``. Nothing here may import from outside this folder.
"""
