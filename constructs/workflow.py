"""Saga: a Step Functions state machine of forward steps and their compensations.

Orchestration from the course ("Step Functions orchestre les sagas distribuées"). Correct by
default, where the public samples are not:

- every forward step (:meth:`Saga.step`) gets a Retry on transient errors only (exponential
  backoff with full jitter, bounded delay) and a Catch that **keeps the input**
  (``ResultPath: $.error``) and starts the compensations;
- compensations run in reverse order of their steps, starting from the failed step's own
  (its step may have half-run); each must be an idempotent no-op when its step never ran (the
  handlers' contract); each has its own Retry and a Catch that notifies the operators (SNS)
  and ends in ``Fail`` (``CompensationFailed``): a failed execution, which the monitoring
  alarms on;
- a timeout on the execution and on every task; logging ALL to a log group with a retention,
  execution data off unless asked; X-Ray tracing; Standard by default, Express checked
  against its limits (5 minutes, no ``.sync`` / ``.waitForTaskToken`` integrations);
- the definition is validated at synth (:func:`validate_definition`): unknown and
  unreachable states, missing Next/End, malformed JSONPath, things CDK leaves to deploy time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

from aws_cdk import CfnElement, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

from constructs import Construct
from conveyor.constructs.defaults import (
    LOG_RETENTION,
    SAGA_EXECUTION_TIMEOUT,
    SAGA_RETRY_ATTEMPTS,
    SAGA_RETRY_BACKOFF_RATE,
    SAGA_RETRY_INTERVAL,
    SAGA_RETRY_MAX_DELAY,
    SAGA_TASK_TIMEOUT,
    SAGA_TRANSIENT_ERRORS,
)
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import new_key
from conveyor.constructs.rules import acknowledge, require, seconds

EXPRESS_MAX_DURATION_S = 5 * 60
STANDARD_MAX_DURATION_S = 365 * 24 * 3600
COMPENSATION_FAILED = "CompensationFailed"
_JSON_PATH = re.compile(r"^\$\$?(\.[A-Za-z0-9_@-]+|\[[0-9*]+\]|\['[^']*'\])*$")
_PATH_FIELDS = ("InputPath", "OutputPath", "ResultPath", "ItemsPath")
_TERMINAL = ("Succeed", "Fail")


class Saga(Construct):
    """A saga on Step Functions. Build the steps with :meth:`task` / :meth:`step`, then
    :meth:`build` the state machine from the first state.

    Attributes: ``log_group``, ``operator_topic`` (compensation failures are published here),
    ``encryption_key`` (of the topic), ``compensated`` (a Pass state reached once every
    compensation ran: chain what follows, e.g. an ``OrderFailed`` event), ``state_machine``
    (after :meth:`build`), ``definition`` (the rendered ASL, after :meth:`build`).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine_type: sfn.StateMachineType = sfn.StateMachineType.STANDARD,
        timeout: Duration = SAGA_EXECUTION_TIMEOUT,
        task_timeout: Duration = SAGA_TASK_TIMEOUT,
        transient_errors: Sequence[str] = SAGA_TRANSIENT_ERRORS,
        retry_interval: Duration = SAGA_RETRY_INTERVAL,
        retry_attempts: int = SAGA_RETRY_ATTEMPTS,
        retry_backoff_rate: float = SAGA_RETRY_BACKOFF_RATE,
        retry_max_delay: Duration = SAGA_RETRY_MAX_DELAY,
        include_execution_data: bool = False,
        log_retention: logs.RetentionDays = LOG_RETENTION,
        operator_topic: sns.ITopic | None = None,
        log_encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """Create the log group and the operator topic.

        :param state_machine_type: Default: STANDARD (up to a year, exactly-once steps).
            EXPRESS needs ``timeout`` <= 5 minutes and no ``.sync``/callback integrations.
        :param timeout: of the whole execution. Default: 15 minutes.
        :param task_timeout: of each Lambda task. Default: 60 seconds.
        :param transient_errors: the error names a step retries. Default: ``TransientError``
            and Lambda's own service errors (``Lambda.ServiceException``, ``…TooManyRequests…``).
        :param retry_interval, retry_attempts, retry_backoff_rate, retry_max_delay: the
            retry policy. Default: 1 s, 3 attempts, × 2, at most 30 s, full jitter.
        :param include_execution_data: log states' input and output. Default: off (they hold
            the orders: customer ids, amounts).
        :param log_retention: Default: one month.
        :param operator_topic: where compensation failures are published. Default: a topic
            created here (customer-managed key).
        :param log_encryption_key: encrypts the execution log group. Default: the operator
            topic's key when the topic is created here, else a new customer-managed key.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        duration = seconds(timeout)
        express = state_machine_type == sfn.StateMachineType.EXPRESS
        limit = EXPRESS_MAX_DURATION_S if express else STANDARD_MAX_DURATION_S
        require(
            duration is None or 0 < duration <= limit,
            path,
            f"timeout must be 1 s to {limit} s for a {state_machine_type.value} state machine "
            f"(got {duration:.0f} s)"
            if duration is not None
            else "",
        )
        task = seconds(task_timeout)
        require(
            task is None or duration is None or 0 < task <= duration,
            path,
            "task_timeout must be positive and at most the execution timeout",
        )
        require(1 <= retry_attempts <= 10, path, "retry_attempts must be 1-10")
        require(1 <= retry_backoff_rate <= 10, path, "retry_backoff_rate must be 1-10")
        require(len(transient_errors) > 0, path, "transient_errors must name at least one error")
        require(
            "States.ALL" not in transient_errors,
            path,
            "transient_errors must not contain States.ALL: a permanent error would be retried",
        )
        self.state_machine_type = state_machine_type
        self._timeout = timeout
        self._task_timeout = task_timeout
        self._retry: dict[str, Any] = {
            "errors": list(transient_errors),
            "interval": retry_interval,
            "max_attempts": retry_attempts,
            "backoff_rate": retry_backoff_rate,
            "max_delay": retry_max_delay,
            "jitter_strategy": sfn.JitterType.FULL,
        }
        self._include_execution_data = include_execution_data
        self._removal_policy = removal_policy
        self.encryption_key: kms.IKey | None = None
        if operator_topic is None:
            self.encryption_key = new_key(
                self,
                "OperatorKey",
                description="Operator notifications of " + path,
                removal_policy=removal_policy,
            )
            topic = sns.Topic(
                self,
                "OperatorTopic",
                display_name="Saga compensation failures",
                master_key=self.encryption_key,
                enforce_ssl=True,
            )
            operator_topic = topic
        self.operator_topic = operator_topic
        logs_key = (
            log_encryption_key
            or self.encryption_key
            or new_key(
                self,
                "LogsKey",
                description="Execution logs of " + path,
                removal_policy=removal_policy,
            )
        )
        self.log_group = encrypted_log_group(
            self,
            "Logs",
            key=logs_key,
            log_group_name=f"/aws/vendedlogs/states/{construct_id}-{_suffix(self)}",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.compensated = sfn.Pass(self, "Compensated", comment="every compensation ran")
        self._failed = sfn.Fail(
            self,
            COMPENSATION_FAILED,
            error=COMPENSATION_FAILED,
            cause="A compensation failed after its retries: operators are notified",
        )
        notify = tasks.SnsPublish(
            self,
            "NotifyOperators",
            topic=operator_topic,
            subject="Saga compensation failed",
            message=sfn.TaskInput.from_object(
                {
                    "stateMachine": sfn.JsonPath.string_at("$$.StateMachine.Name"),
                    "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                    "error": sfn.JsonPath.object_at("$.compensationError"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
            task_timeout=sfn.Timeout.duration(task_timeout),
        )
        notify.add_retry(**self._retry)
        notify.add_catch(self._failed, result_path="$.notificationError")
        notify.next(self._failed)
        self._notify = notify
        # The head of the compensation chain so far (a step's Catch starts there).
        self._compensation_head: sfn.State = self.compensated
        self.compensations: list[str] = []
        self._functions: list[lambda_.IFunction] = []
        self.state_machine: sfn.StateMachine | None = None
        self.definition: dict[str, Any] = {}

    # -- building blocks -----------------------------------------------------------------------

    def task(
        self,
        state_id: str,
        function: lambda_.IFunction,
        *,
        payload: sfn.TaskInput | None = None,
        result_path: str | None = None,
        result_selector: Mapping[str, Any] | None = None,
        scope: Construct | None = None,
    ) -> tasks.LambdaInvoke:
        """A Lambda task with the saga's task timeout and Retry (no Catch: wrap it with
        :meth:`step`, or use it inside a Map or Parallel that is a step)."""
        invoke = tasks.LambdaInvoke(
            scope or self,
            state_id,
            lambda_function=function,
            payload=payload,
            payload_response_only=True,
            retry_on_service_exceptions=False,  # replaced by the saga's Retry (with jitter)
            result_path=result_path,
            result_selector=result_selector,
            task_timeout=sfn.Timeout.duration(self._task_timeout),
        )
        invoke.add_retry(**self._retry)
        self._functions.append(function)
        return invoke

    def step(
        self,
        state: sfn.TaskStateBase | sfn.Parallel | sfn.Map,
        *,
        compensations: Mapping[str, lambda_.IFunction] | None = None,
    ) -> sfn.TaskStateBase | sfn.Parallel | sfn.Map:
        """Make ``state`` a forward step: on any error after its retries, keep the input (the
        error goes to ``$.error``) and run the compensations: this step's own
        (``compensations``: task id → function, run in the order given; a step that does two
        things lists both), then those of the earlier steps, in reverse order of the steps."""
        for name, function in reversed(list((compensations or {}).items())):
            require(
                name not in self.compensations,
                self.node.path,
                f"duplicate compensation {name}",
            )
            undo = self.task(name, function, result_path=sfn.JsonPath.DISCARD)
            undo.add_catch(self._notify, result_path="$.compensationError")
            undo.next(self._compensation_head)
            self._compensation_head = undo
            self.compensations.append(name)
        state.add_catch(self._compensation_head, errors=["States.ALL"], result_path="$.error")
        return state

    def build(
        self, start: sfn.IChainable, *, state_machine_name: str | None = None
    ) -> sfn.StateMachine:
        """Create the state machine from ``start``; its definition is validated here."""
        require(self.state_machine is None, self.node.path, "build() was already called")
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(start),
            state_machine_type=self.state_machine_type,
            timeout=self._timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=self._include_execution_data,
            ),
            removal_policy=self._removal_policy,
        )
        definition = rendered_definition(machine)
        validate_definition(definition, where=self.node.path)
        if self.state_machine_type == sfn.StateMachineType.EXPRESS:
            for state_id, resource in _resources(definition):
                require(
                    not any(m in resource for m in (".sync", ".waitForTaskToken")),
                    self.node.path,
                    f"state {state_id}: {resource} is not supported by EXPRESS state machines",
                )
        self.definition = definition
        if self.encryption_key is not None:
            # SnsPublish grants sns:Publish; an encrypted topic also needs its key.
            self.encryption_key.grant(machine, "kms:GenerateDataKey", "kms:Decrypt")
        self._acknowledge_role(machine)
        self.state_machine = machine
        return machine

    def _acknowledge_role(self, machine: sfn.StateMachine) -> None:
        policy = machine.role.node.try_find_child("DefaultPolicy")
        if policy is None:  # pragma: no cover - the tasks' grants always create it
            return
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing (xray:PutTraceSegments, PutTelemetryRecords, GetSampling*) and "
            "CloudWatch Logs delivery (logs:CreateLogDelivery, …, DescribeLogGroups) have no "
            "resource-level permissions: AWS documents Resource * for both.",
        )
        stack = Stack.of(self)
        seen: set[str] = set()
        for function in self._functions:
            child = function.node.default_child
            if not isinstance(child, CfnElement) or Stack.of(function) is not stack:
                continue
            logical_id = stack.get_logical_id(child)
            if logical_id in seen:
                continue
            seen.add(logical_id)
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
                "LambdaInvoke grants lambda:InvokeFunction on this one function and its "
                "versions/aliases (ARN:*), which the task may name: no other function.",
            )

    def grant_start(self, grantee: iam.IGrantable) -> iam.Grant:
        require(self.state_machine is not None, self.node.path, "call build() first")
        assert self.state_machine is not None
        return self.state_machine.grant_start_execution(grantee)


def _suffix(scope: Construct) -> str:
    return scope.node.addr[-8:]


# -- definition validation ---------------------------------------------------------------------


def rendered_definition(machine: sfn.StateMachine) -> dict[str, Any]:
    """The ASL of ``machine`` as CloudFormation will render it; values still unknown at synth
    (ARNs, names: ``Fn::GetAtt``, ``Ref``) read ``"<token>"``."""
    cfn = cast(sfn.CfnStateMachine, machine.node.default_child)
    resolved = Stack.of(machine).resolve(cfn.definition_string)
    if isinstance(resolved, str):
        return cast(dict[str, Any], json.loads(resolved))
    parts = resolved["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else "<token>" for part in parts)
    return cast(dict[str, Any], json.loads(text))


def validate_definition(definition: Mapping[str, Any], *, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and the state for what Step Functions would
    reject at deploy (or fail on at run time): StartAt/Next/Default/Catch targets that do not
    exist, states no path reaches, a non-terminal state without Next or End, a malformed
    JSONPath (paths and ``.$`` fields), a Choice without choices."""
    _validate_states(definition, where)


def _validate_states(machine: Mapping[str, Any], where: str) -> None:
    states = machine.get("States")
    require(isinstance(states, Mapping) and bool(states), where, "the definition has no States")
    assert isinstance(states, Mapping)
    start = machine.get("StartAt")
    require(start in states, where, f"StartAt {start!r} is not a state")
    for state_id, state in states.items():
        at = f"{where}: state {state_id}"
        kind = state.get("Type")
        for target in _targets(state):
            require(target in states, at, f"goes to {target!r}, which is not a state")
        if kind == "Choice":
            require(bool(state.get("Choices")), at, "a Choice state needs at least one choice")
        elif kind not in _TERMINAL:
            require(
                ("Next" in state) != bool(state.get("End")),
                at,
                "needs exactly one of Next or End",
            )
        for name in _PATH_FIELDS:
            value = state.get(name)
            if isinstance(value, str):
                _check_path(value, at, name)
        _check_parameters(state.get("Parameters"), at)
        _check_parameters(state.get("ItemSelector"), at)
        _check_parameters(state.get("ResultSelector"), at)
        for branch in state.get("Branches", []):
            _validate_states(branch, f"{at} (branch)")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor is not None:
            _validate_states(processor, f"{at} (item processor)")
    reachable = _reachable(states, str(start))
    unreachable = sorted(set(states) - reachable)
    require(not unreachable, where, f"unreachable states: {', '.join(unreachable)}")


def _targets(state: Mapping[str, Any]) -> Iterator[str]:
    if "Next" in state:
        yield str(state["Next"])
    if "Default" in state:
        yield str(state["Default"])
    for choice in state.get("Choices", []):
        if "Next" in choice:
            yield str(choice["Next"])
    for catch in state.get("Catch", []):
        yield str(catch.get("Next"))


def _reachable(states: Mapping[str, Any], start: str) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        current = pending.pop()
        if current in seen or current not in states:
            continue
        seen.add(current)
        pending.extend(_targets(states[current]))
    return seen


def _check_path(value: str, at: str, field: str) -> None:
    require(
        bool(_JSON_PATH.fullmatch(value)),
        at,
        f"{field} {value!r} is not a valid JSONPath (reference paths start with $)",
    )


def _check_parameters(value: Any, at: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key.endswith(".$") and isinstance(item, str):
                if item.startswith("States."):
                    require(
                        item.count("(") == item.count(")"),
                        at,
                        f"{key}: unbalanced intrinsic function {item!r}",
                    )
                else:
                    _check_path(item, at, key)
            else:
                _check_parameters(item, at)
    elif isinstance(value, list):
        for item in value:
            _check_parameters(item, at)


def _resources(machine: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for state_id, state in machine.get("States", {}).items():
        resource = state.get("Resource")
        if resource is not None:
            yield state_id, resource if isinstance(resource, str) else json.dumps(resource)
        for branch in state.get("Branches", []):
            yield from _resources(branch)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor is not None:
            yield from _resources(processor)
