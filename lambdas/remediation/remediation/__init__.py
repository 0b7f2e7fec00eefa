"""Auto-remediation of CloudWatch alarms: incident records and capped DLQ redrives.

The asset root is ``lambdas/remediation/``. Handler string: ``remediation.handler.handler``,
subscribed to the alarm SNS topic and/or targeted by an EventBridge rule on "CloudWatch Alarm
State Change" events.

Nothing here may import from outside this folder.
"""
