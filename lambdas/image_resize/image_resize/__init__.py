"""Thumbnail Lambda: S3 upload -> SQS -> resize -> S3 (processed).

The asset root is ``lambdas/image_resize/``; the Lambda handler string is
``image_resize.handler.handler``. Nothing here may import from outside this folder.
"""
