"""Conveyor's defaults, in one place (as the Solutions Constructs core keeps its ``*-defaults``).

Every construct takes its default from here, and its docstring names the value. Change a
default here and every construct follows; override it per construct through its props.

Each value says why it is what it is: most come from a service rule (see the README's
"Service rules" and ``../shared/DESIGN.md``), the rest are the cheapest safe choice.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

# -- SQS -------------------------------------------------------------------------------------

# SQS's own default retention for a source queue: long enough to survive a weekend outage.
SOURCE_RETENTION: Final = Duration.days(4)
# The maximum. A standard queue keeps a message's original enqueue time when it moves to the
# DLQ, so the DLQ must keep messages longer than the source queue or they expire at once.
DEAD_LETTER_RETENTION: Final = Duration.days(14)
# Receives before SQS moves a message to the DLQ: below 5, a throttled or briefly failing
# consumer dead-letters good messages (AWS's guidance for Lambda consumers).
MAX_RECEIVE_COUNT: Final = 5
# Records per invocation: the FIFO maximum, and the largest batch that needs no window.
BATCH_SIZE: Final = 10
# Lambda's guidance: the queue's visibility timeout is at least 6 × the function timeout.
VISIBILITY_FACTOR: Final = 6

# -- Lambda ----------------------------------------------------------------------------------

# The newest Python runtime CDK knows, on Graviton (cheaper per GB-second).
RUNTIME: Final = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE: Final = lambda_.Architecture.ARM_64
FUNCTION_TIMEOUT: Final = Duration.seconds(30)
MEMORY_SIZE_MB: Final = 256
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH
# Asynchronous invocation: Lambda's own defaults, made explicit (retries 0-2, age 60 s-6 h).
ASYNC_RETRY_ATTEMPTS: Final = 2
ASYNC_MAX_EVENT_AGE: Final = Duration.hours(6)

# -- EventBridge -----------------------------------------------------------------------------

# The target retry policy's maxima (EventBridge's defaults).
RULE_TARGET_RETRY_ATTEMPTS: Final = 185
RULE_TARGET_MAX_EVENT_AGE: Final = Duration.hours(24)

# -- Alarms ----------------------------------------------------------------------------------

# A dead-letter queue alarm looks at the maximum depth each minute and fires on the first
# message. SQS stops emitting metrics for an idle queue, so missing data is not breaching.
DEAD_LETTER_ALARM_PERIOD: Final = Duration.minutes(1)

# -- Kinesis Data Streams → Lambda -------------------------------------------------------------

# Kinesis's own minimum retention; raise it to keep a longer replay window.
STREAM_RETENTION: Final = Duration.hours(24)
# Records per invocation from one shard (Lambda's default for Kinesis is 100).
STREAM_BATCH_SIZE: Final = 100
# CDK's KinesisEventSource retries forever and never ages records out: one bad record blocks
# its shard for the whole retention. Bounded: 3 retries, and at most 1 hour behind.
STREAM_RETRY_ATTEMPTS: Final = 3
STREAM_MAX_RECORD_AGE: Final = Duration.hours(1)
# Iterator age above which the consumer is falling behind (records wait this long).
ITERATOR_AGE_ALARM: Final = Duration.minutes(5)
# -- Step Functions (Saga) ---------------------------------------------------------------------

# An order fulfilment finishes in seconds; 15 minutes bounds a stuck execution (a Standard
# state machine's own default is a year) and stays above Express's 5-minute cap by design.
SAGA_EXECUTION_TIMEOUT: Final = Duration.minutes(15)
# Above the 30 s function timeout: Lambda times out first and reports it as an error.
SAGA_TASK_TIMEOUT: Final = Duration.seconds(60)
# Retry on transient errors only (a permanent error is compensated at once): the handlers'
# ``TransientError`` and Lambda's own service errors (what CDK's default retry covers).
SAGA_TRANSIENT_ERRORS: Final = (
    "TransientError",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# 1 s, 2 s, 4 s with full jitter (AWS's "exponential backoff and jitter"), never above 30 s.
SAGA_RETRY_INTERVAL: Final = Duration.seconds(1)
SAGA_RETRY_ATTEMPTS: Final = 3
SAGA_RETRY_BACKOFF_RATE: Final = 2.0
SAGA_RETRY_MAX_DELAY: Final = Duration.seconds(30)
