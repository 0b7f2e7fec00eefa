"""What the telemetry handler and the CDK code that deploys it agree on. Stdlib only: the CDK
code imports it as ``conveyor.lambdas.telemetry.telemetry.contract``."""

from __future__ import annotations

from typing import Final

HANDLER: Final = "telemetry.handler.handler"

# A device reading, one Kinesis record (JSON object); the partition key is the device id.
DEVICE_ID: Final = "deviceId"
VALUE: Final = "value"
READ_AT: Final = "readAt"
READING_FIELDS: Final = (DEVICE_ID, VALUE, READ_AT)

# The aggregates table: partition key ``deviceId`` (string), one item per device.
TABLE_KEY: Final = DEVICE_ID
READINGS: Final = "readings"
TOTAL: Final = "total"
LAST_VALUE: Final = "lastValue"
LAST_SEQUENCE: Final = "lastSequence"  # zero-padded to SEQUENCE_WIDTH digits (compared as text)
SEQUENCE_WIDTH: Final = 64

# Environment variables.
AGGREGATES_TABLE: Final = "AGGREGATES_TABLE"
ENVIRONMENT: Final = (AGGREGATES_TABLE,)

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {HANDLER: "telemetry.config:Settings"}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones
# (MalformedMessages, DuplicatesSkipped, RecordsFailed, RecordsSkipped).
READINGS_AGGREGATED: Final = "ReadingsAggregated"
METRICS: Final = (READINGS_AGGREGATED,)
