"""Saga: defaults (Retry with jitter on transient errors, Catch keeping the input, reverse
compensations with their own Retry and Catch, timeouts, logging, tracing) and synth-time errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Match, Template

from conveyor.constructs.workflow import Saga, validate_definition

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def _function(stack: Stack, name: str) -> lambda_.Function:
    return lambda_.Function(
        stack, name, code=CODE, handler="index.handler", runtime=lambda_.Runtime.PYTHON_3_14
    )


def _two_step_saga(stack: Stack, **props: Any) -> Saga:
    saga = Saga(stack, "Saga", **props)
    first = saga.step(
        saga.task("First", _function(stack, "FirstFn"), result_path="$.first"),
        compensations={"UndoFirst": _function(stack, "UndoFirstFn")},
    )
    second = saga.step(
        saga.task("Second", _function(stack, "SecondFn"), result_path="$.second"),
        compensations={"UndoSecond": _function(stack, "UndoSecondFn")},
    )
    saga.compensated.next(sfn.Succeed(stack, "Done"))
    saga.build(first.next(second))
    return saga


@pytest.fixture(scope="module")
def built(make_app) -> tuple[Saga, Template]:
    stack = Stack(make_app(), "SagaTest")
    saga = _two_step_saga(stack)
    return saga, Template.from_stack(stack)


def test_the_state_machine_is_standard_traced_and_logs_all_without_execution_data(built):
    _, template = built
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": False},
        },
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_forward_steps_retry_transient_errors_only_with_backoff_and_full_jitter(built):
    saga, _ = built
    retry = saga.definition["States"]["First"]["Retry"]
    assert retry == [
        {
            "ErrorEquals": [
                "TransientError",
                "Lambda.ServiceException",
                "Lambda.AWSLambdaException",
                "Lambda.SdkClientException",
                "Lambda.TooManyRequestsException",
            ],
            "IntervalSeconds": 1,
            "MaxAttempts": 3,
            "BackoffRate": 2,
            "MaxDelaySeconds": 30,
            "JitterStrategy": "FULL",
        }
    ]


def test_a_steps_catch_keeps_the_input_and_starts_its_own_compensation(built):
    saga, _ = built
    states = saga.definition["States"]
    assert states["Second"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "UndoSecond"}
    ]
    assert states["First"]["Catch"][0]["Next"] == "UndoFirst"


def test_compensations_run_in_reverse_order_then_reach_compensated(built):
    saga, _ = built
    states = saga.definition["States"]
    assert states["UndoSecond"]["Next"] == "UndoFirst"
    assert states["UndoFirst"]["Next"] == "Compensated"
    assert states["Compensated"]["Next"] == "Done"
    assert states["UndoFirst"]["ResultPath"] is None  # DISCARD: the input (and error) is kept


def test_a_compensation_retries_and_its_failure_notifies_operators_then_fails(built):
    saga, _ = built
    states = saga.definition["States"]
    undo = states["UndoFirst"]
    assert undo["Retry"][0]["ErrorEquals"][0] == "TransientError"
    assert undo["Catch"] == [
        {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.compensationError",
            "Next": "NotifyOperators",
        }
    ]
    assert states["NotifyOperators"]["Next"] == "CompensationFailed"
    assert states["CompensationFailed"] == {
        "Type": "Fail",
        "Error": "CompensationFailed",
        "Cause": "A compensation failed after its retries: operators are notified",
    }


def test_the_execution_and_every_task_have_a_timeout(built):
    saga, _ = built
    assert saga.definition["TimeoutSeconds"] == 900
    assert saga.definition["States"]["First"]["TimeoutSeconds"] == 60
    assert saga.definition["States"]["UndoFirst"]["TimeoutSeconds"] == 60


def test_the_operator_topic_is_encrypted_with_a_customer_managed_key(built):
    _, template = built
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_execution_data_can_be_logged_when_asked(make_app):
    stack = Stack(make_app(), "SagaData")
    _two_step_saga(stack, include_execution_data=True)
    Template.from_stack(stack).has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {"LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": True}},
    )


def test_express_with_more_than_five_minutes_is_rejected_naming_the_construct(make_app):
    stack = Stack(make_app(), "SagaExpress")
    with pytest.raises(
        ValueError, match=r"SagaExpress/Saga: timeout must be 1 s to 300 s for a EXPRESS"
    ):
        Saga(stack, "Saga", state_machine_type=sfn.StateMachineType.EXPRESS)


def test_express_within_five_minutes_is_accepted(make_app):
    stack = Stack(make_app(), "SagaExpressOk")
    saga = _two_step_saga(
        stack, state_machine_type=sfn.StateMachineType.EXPRESS, timeout=Duration.minutes(5)
    )
    assert saga.state_machine is not None


def test_retrying_states_all_is_rejected(make_app):
    stack = Stack(make_app(), "SagaAll")
    with pytest.raises(ValueError, match=r"must not contain States\.ALL"):
        Saga(stack, "Saga", transient_errors=["States.ALL"])


def test_a_task_timeout_above_the_execution_timeout_is_rejected(make_app):
    stack = Stack(make_app(), "SagaTimeouts")
    with pytest.raises(ValueError, match="task_timeout must be positive and at most"):
        Saga(stack, "Saga", timeout=Duration.seconds(30), task_timeout=Duration.seconds(60))


def _machine(states: dict[str, Any], start: str = "A") -> dict[str, Any]:
    return {"StartAt": start, "States": states}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (_machine({"A": {"Type": "Pass", "Next": "B"}}), "goes to 'B', which is not a state"),
        (_machine({"A": {"Type": "Pass", "End": True}}, start="Z"), "StartAt 'Z' is not a state"),
        (
            _machine({"A": {"Type": "Pass", "End": True}, "B": {"Type": "Pass", "End": True}}),
            "unreachable states: B",
        ),
        (_machine({"A": {"Type": "Pass"}}), "needs exactly one of Next or End"),
        (_machine({"A": {"Type": "Choice", "Choices": []}}), "needs at least one choice"),
        (
            _machine({"A": {"Type": "Pass", "End": True, "ResultPath": "order.id"}}),
            "ResultPath 'order.id' is not a valid JSONPath",
        ),
        (
            _machine({"A": {"Type": "Pass", "End": True, "Parameters": {"x.$": "$.a..b"}}}),
            "x.$ '$.a..b' is not a valid JSONPath",
        ),
        (
            _machine(
                {
                    "A": {
                        "Type": "Parallel",
                        "End": True,
                        "Branches": [_machine({"A": {"Type": "Pass", "Next": "Nowhere"}})],
                    }
                }
            ),
            "(branch): state A: goes to 'Nowhere'",
        ),
    ],
)
def test_definition_errors_are_caught_at_synth(definition, message):
    with pytest.raises(ValueError, match=rf"^Where: .*{_escape(message)}"):
        validate_definition(definition, where="Where")


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_a_valid_definition_with_catch_choice_and_map_passes():
    definition = _machine(
        {
            "A": {
                "Type": "Task",
                "Resource": "x",
                "Next": "C",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}],
            },
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "M"}],
                "Default": "F",
            },
            "M": {
                "Type": "Map",
                "ItemsPath": "$.lines",
                "ItemSelector": {
                    "line.$": "$$.Map.Item.Value",
                    "n.$": "States.ArrayLength($.lines)",
                },
                "ItemProcessor": _machine({"A": {"Type": "Pass", "End": True}}),
                "End": True,
            },
            "F": {"Type": "Fail", "Error": "X"},
        }
    )
    validate_definition(definition, where="Where")
    assert json.dumps(definition)  # unchanged, serialisable
