"""What the remediation handler and the CDK code that deploys it agree on. Stdlib only: the
CDK code imports it as ``conveyor.lambdas.remediation.remediation.contract``."""

from __future__ import annotations

from typing import Final

HANDLER: Final = "remediation.handler.handler"

# Rule actions (the "action" of each REMEDIATION_RULES entry).
RECORD_INCIDENT: Final = "record_incident"
REDRIVE: Final = "redrive"
ACTIONS: Final = (RECORD_INCIDENT, REDRIVE)
# The keys each action's rule takes.
RULE_KEYS: Final = {
    RECORD_INCIDENT: ("action", "dead_letter_queue_arn"),
    REDRIVE: ("action", "dead_letter_queue_arn", "source_queue_arn"),
}

# Environment variables. The rules are REMEDIATION_RULES (JSON) or, when it is unset, read
# from the SSM parameter named by REMEDIATION_RULES_PARAMETER.
REMEDIATION_RULES: Final = "REMEDIATION_RULES"
REMEDIATION_RULES_PARAMETER: Final = "REMEDIATION_RULES_PARAMETER"
AUDIT_TABLE: Final = "AUDIT_TABLE"
REDRIVE_MAX_PER_DAY: Final = "REDRIVE_MAX_PER_DAY"
REDRIVE_MAX_MESSAGES_PER_SECOND: Final = "REDRIVE_MAX_MESSAGES_PER_SECOND"
AUDIT_RETENTION_DAYS: Final = "AUDIT_RETENTION_DAYS"
ENVIRONMENT: Final = (
    REMEDIATION_RULES,
    REMEDIATION_RULES_PARAMETER,
    AUDIT_TABLE,
    REDRIVE_MAX_PER_DAY,
    REDRIVE_MAX_MESSAGES_PER_SECOND,
    AUDIT_RETENTION_DAYS,
)
# A variable naming an SSM parameter whose value stands for another variable (when unset).
PARAMETER_VARIABLES: Final = {REMEDIATION_RULES_PARAMETER: REMEDIATION_RULES}

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {HANDLER: "remediation.config:Settings"}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE).
NOTIFICATIONS_FAILED: Final = "NotificationsFailed"
MALFORMED_NOTIFICATIONS: Final = "MalformedNotifications"
METRICS: Final = (
    NOTIFICATIONS_FAILED,
    MALFORMED_NOTIFICATIONS,
    "NotificationsInProgress",
    "IncidentsOpened",
    "IncidentsResolved",
    "NoOpenIncident",
    "RedrivesStarted",
    "RedriveSkippedEmpty",
    "RedriveSkippedRunning",
    "RedriveSkippedCap",
    "QueueMissing",
    "UnknownAlarms",
    "TransitionsIgnored",
    "DuplicateNotifications",
)
