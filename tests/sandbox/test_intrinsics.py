"""Unit tests of the sandbox's CloudFormation intrinsic resolver."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from conveyor.sandbox.intrinsics import (
    NO_VALUE,
    IntrinsicError,
    Resolver,
    availability_zones,
    is_intrinsic,
    pseudo_parameters,
    references,
    stack_id,
)
from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedResource

STACK = "Conveyor-test-Unit"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/orders"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:orders"

TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Environment": {"Type": "String", "Default": "test"},
        "Sizes": {"Type": "CommaDelimitedList", "Default": "64, 256"},
        "NoDefault": {"Type": "String"},
        "BootstrapVersion": {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/cdk-bootstrap/hnb659fds/version",
        },
    },
    "Conditions": {
        "IsTest": {"Fn::Equals": [{"Ref": "Environment"}, "test"]},
        "IsProd": {"Fn::Equals": [{"Ref": "Environment"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
        "TestAndNotProd": {"Fn::And": [{"Condition": "IsTest"}, {"Condition": "NotProd"}]},
        "ProdOrTest": {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "IsTest"}]},
        "Loop": {"Fn::Not": [{"Condition": "Loop2"}]},
        "Loop2": {"Fn::Not": [{"Condition": "Loop"}]},
        "Weird": {"Fn::Contains": [["a"], "a"]},
    },
    "Mappings": {"Sizes": {"test": {"Small": "64"}}},
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Later": {"Type": "AWS::SQS::Queue"},
    },
}


@pytest.fixture
def resolver() -> Resolver:
    resources = {
        "Queue": DeployedResource(
            logical_id="Queue",
            type="AWS::SQS::Queue",
            physical_id=QUEUE_URL,
            attributes={"Arn": QUEUE_ARN, "QueueName": "orders"},
        )
    }
    return Resolver(stack_name=STACK, resources=resources, template=TEMPLATE)


def resolve(resolver: Resolver, value: Any) -> Any:
    return resolver.resolve(value, logical_id="Subject", path="Properties.Value")


# -- Ref and pseudo parameters ------------------------------------------------------------


def test_ref_resource_returns_physical_id(resolver: Resolver) -> None:
    assert resolve(resolver, {"Ref": "Queue"}) == QUEUE_URL


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AWS::AccountId", ACCOUNT_ID),
        ("AWS::Region", REGION),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
        ("AWS::StackName", STACK),
        ("AWS::StackId", stack_id(STACK)),
        ("AWS::NotificationARNs", []),
    ],
)
def test_pseudo_parameters(resolver: Resolver, name: str, expected: Any) -> None:
    assert resolve(resolver, {"Ref": name}) == expected


def test_stack_id_is_a_deterministic_arn() -> None:
    first = stack_id(STACK)
    assert first == stack_id(STACK)
    assert first.startswith(f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK}/")
    assert stack_id("Other") != first
    assert pseudo_parameters(STACK)["AWS::StackId"] == first


def test_unknown_pseudo_parameter_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="unknown pseudo parameter AWS::Nope"):
        resolve(resolver, {"Ref": "AWS::Nope"})


def test_ref_parameter_default_and_list(resolver: Resolver) -> None:
    assert resolve(resolver, {"Ref": "Environment"}) == "test"
    assert resolve(resolver, {"Ref": "Sizes"}) == ["64", "256"]


def test_explicit_parameter_overrides_default() -> None:
    resolver = Resolver(
        stack_name=STACK, resources={}, template=TEMPLATE, parameters={"Environment": "prod"}
    )
    assert resolver.resolve({"Ref": "Environment"}, logical_id="X") == "prod"
    assert resolver.condition("IsProd", logical_id="X") is True


def test_parameter_without_value_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="NoDefault has no value"):
        resolve(resolver, {"Ref": "NoDefault"})


def test_ssm_parameter_reference_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="SSM parameter reference"):
        resolve(resolver, {"Ref": "BootstrapVersion"})


def test_ref_to_resource_not_deployed_yet_names_it(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError) as error:
        resolve(resolver, {"Ref": "Later"})
    assert "Later, which is not deployed yet" in str(error.value)
    assert error.value.logical_id == "Subject"
    assert error.value.path == "Properties.Value.Ref"


def test_ref_to_unknown_name_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="Missing, which is neither a resource"):
        resolve(resolver, {"Ref": "Missing"})


def test_ref_takes_a_string(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="Ref takes a name"):
        resolve(resolver, {"Ref": ["Queue"]})


# -- GetAtt --------------------------------------------------------------------------------


def test_get_att_list_and_dotted_forms(resolver: Resolver) -> None:
    assert resolve(resolver, {"Fn::GetAtt": ["Queue", "Arn"]}) == QUEUE_ARN
    assert resolve(resolver, {"Fn::GetAtt": "Queue.QueueName"}) == "orders"


def test_get_att_attribute_may_be_an_intrinsic(resolver: Resolver) -> None:
    value = {"Fn::GetAtt": ["Queue", {"Fn::Join": ["", ["Queue", "Name"]]}]}
    assert resolve(resolver, value) == "orders"


def test_get_att_unknown_attribute_lists_known_ones(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match=r"no attribute 'Nope'.*known: Arn, QueueName"):
        resolve(resolver, {"Fn::GetAtt": ["Queue", "Nope"]})


@pytest.mark.parametrize("argument", [["Queue"], "Queue", 3, ["Queue", "Arn", "x"]])
def test_get_att_malformed(resolver: Resolver, argument: Any) -> None:
    with pytest.raises(IntrinsicError, match="Fn::GetAtt"):
        resolve(resolver, {"Fn::GetAtt": argument})


# -- Sub -----------------------------------------------------------------------------------


def test_sub_string_form(resolver: Resolver) -> None:
    text = "arn:${AWS::Partition}:s3:::${AWS::AccountId}-${AWS::Region} ${Queue} ${Queue.Arn}"
    assert resolve(resolver, {"Fn::Sub": text}) == (
        f"arn:aws:s3:::{ACCOUNT_ID}-{REGION} {QUEUE_URL} {QUEUE_ARN}"
    )


def test_sub_literal_and_parameter(resolver: Resolver) -> None:
    assert resolve(resolver, {"Fn::Sub": "${!Literal}-${Environment}"}) == "${Literal}-test"


def test_sub_list_form_variables_win_and_may_be_intrinsics(resolver: Resolver) -> None:
    value = {
        "Fn::Sub": [
            "${Name}/${Queue}/${Env}",
            {"Name": {"Fn::GetAtt": ["Queue", "QueueName"]}, "Queue": "shadowed", "Env": 3},
        ]
    }
    assert resolve(resolver, value) == "orders/shadowed/3"


def test_sub_of_unknown_variable_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="Nothing"):
        resolve(resolver, {"Fn::Sub": "${Nothing}"})


def test_sub_of_list_value_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="does not resolve to a string"):
        resolve(resolver, {"Fn::Sub": "${Sizes}"})


def test_sub_malformed(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="Fn::Sub takes"):
        resolve(resolver, {"Fn::Sub": ["a", "b"]})


# -- Join / Select / Split / GetAZs / FindInMap / Base64 ------------------------------------


def test_join_nested(resolver: Resolver) -> None:
    value = {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, ":x:", {"Fn::Join": ["-", ["a", "b"]]}, 5, True],
        ]
    }
    assert resolve(resolver, value) == "arn:aws:x:a-b5true"


def test_join_of_a_list_intrinsic(resolver: Resolver) -> None:
    assert resolve(resolver, {"Fn::Join": ["+", {"Ref": "Sizes"}]}) == "64+256"


def test_join_drops_no_value_items(resolver: Resolver) -> None:
    assert resolve(resolver, {"Fn::Join": [",", ["a", {"Ref": "AWS::NoValue"}, "b"]]}) == "a,b"


def test_join_rejects_non_string_items(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="value 0 of Fn::Join is not a string"):
        resolve(resolver, {"Fn::Join": [",", [["nested"]]]})


def test_join_malformed(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="Fn::Join takes"):
        resolve(resolver, {"Fn::Join": ","})
    with pytest.raises(IntrinsicError, match="must resolve to a list"):
        resolve(resolver, {"Fn::Join": [",", "abc"]})


def test_select_and_split(resolver: Resolver) -> None:
    assert resolve(resolver, {"Fn::Select": [1, ["a", "b", "c"]]}) == "b"
    assert resolve(resolver, {"Fn::Select": ["2", {"Fn::Split": ["|", "x|y|z"]}]}) == "z"
    arn_part = {"Fn::Select": [5, {"Fn::Split": [":", {"Fn::GetAtt": ["Queue", "Arn"]}]}]}
    assert resolve(resolver, arn_part) == "orders"


def test_select_out_of_range_and_bad_index(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="index 3 is out of range for 2 values"):
        resolve(resolver, {"Fn::Select": [3, ["a", "b"]]})
    with pytest.raises(IntrinsicError, match="not a number"):
        resolve(resolver, {"Fn::Select": ["x", ["a"]]})
    with pytest.raises(IntrinsicError, match="Fn::Select takes"):
        resolve(resolver, {"Fn::Select": [0]})


def test_split_malformed(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="non-empty delimiter"):
        resolve(resolver, {"Fn::Split": ["", "abc"]})
    with pytest.raises(IntrinsicError, match="Fn::Split takes"):
        resolve(resolver, {"Fn::Split": "abc"})


def test_get_azs(resolver: Resolver) -> None:
    zones = availability_zones(REGION)
    assert resolve(resolver, {"Fn::GetAZs": ""}) == zones
    assert resolve(resolver, {"Fn::GetAZs": {"Ref": "AWS::Region"}}) == zones
    assert resolve(resolver, {"Fn::GetAZs": "eu-west-3"})[0] == "eu-west-3a"
    assert resolve(resolver, {"Fn::Select": [0, {"Fn::GetAZs": ""}]}) == f"{REGION}a"


def test_find_in_map(resolver: Resolver) -> None:
    assert resolve(resolver, {"Fn::FindInMap": ["Sizes", {"Ref": "Environment"}, "Small"]}) == (
        "64"
    )
    default = {"Fn::FindInMap": ["Sizes", "prod", "Small", {"DefaultValue": "128"}]}
    assert resolve(resolver, default) == "128"
    with pytest.raises(IntrinsicError, match="no Sizes/prod/Small in Mappings"):
        resolve(resolver, {"Fn::FindInMap": ["Sizes", "prod", "Small"]})


def test_base64(resolver: Resolver) -> None:
    encoded = resolve(resolver, {"Fn::Base64": {"Fn::Sub": "${AWS::Region}"}})
    assert base64.b64decode(encoded).decode() == REGION


# -- conditions and NoValue ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IsTest", True),
        ("IsProd", False),
        ("NotProd", True),
        ("TestAndNotProd", True),
        ("ProdOrTest", True),
    ],
)
def test_conditions(resolver: Resolver, name: str, expected: bool) -> None:
    assert resolver.condition(name, logical_id="Subject") is expected


def test_if_chooses_by_condition(resolver: Resolver) -> None:
    assert resolve(resolver, {"Fn::If": ["IsTest", "yes", "no"]}) == "yes"
    assert resolve(resolver, {"Fn::If": ["IsProd", "yes", {"Ref": "Queue"}]}) == QUEUE_URL


def test_no_value_removes_keys_and_list_items(resolver: Resolver) -> None:
    value = {
        "Keep": "a",
        "Drop": {"Ref": "AWS::NoValue"},
        "DropIf": {"Fn::If": ["IsTest", {"Ref": "AWS::NoValue"}, "b"]},
        "List": ["x", {"Fn::If": ["IsProd", "y", {"Ref": "AWS::NoValue"}]}, "z"],
    }
    assert resolve(resolver, value) == {"Keep": "a", "List": ["x", "z"]}
    assert resolve(resolver, {"Ref": "AWS::NoValue"}) is NO_VALUE


def test_unknown_condition_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="condition 'Nope' is not declared"):
        resolve(resolver, {"Fn::If": ["Nope", "a", "b"]})


def test_condition_cycle_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="condition cycle: Loop -> Loop2 -> Loop"):
        resolver.condition("Loop", logical_id="Subject")


def test_unsupported_condition_function_fails(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="unsupported condition") as error:
        resolver.condition("Weird", logical_id="Subject")
    assert error.value.path == "Conditions.Weird"


def test_if_malformed(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="Fn::If takes"):
        resolve(resolver, {"Fn::If": ["IsTest", "a"]})


# -- errors --------------------------------------------------------------------------------


def test_unknown_intrinsic_names_logical_id_and_path(resolver: Resolver) -> None:
    value = {"Tags": [{"Key": "a", "Value": {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}}]}
    with pytest.raises(IntrinsicError) as error:
        resolver.resolve(value, logical_id="MyQueue", path="Properties")
    message = str(error.value)
    assert message.startswith("MyQueue.Properties.Tags[0].Value.Fn::Cidr:")
    assert "Fn::Cidr is not supported" in message
    assert error.value.logical_id == "MyQueue"
    assert error.value.path == "Properties.Tags[0].Value.Fn::Cidr"


def test_import_value_is_an_error(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="cross-stack exports are not supported"):
        resolve(resolver, {"Fn::ImportValue": "SharedTopicArn"})


def test_plain_objects_and_scalars_pass_through(resolver: Resolver) -> None:
    value = {"Fn::Join": "not an intrinsic: two keys", "Other": 1, "n": None, "b": False}
    assert resolve(resolver, value) == value
    assert not is_intrinsic(value)
    assert is_intrinsic({"Fn::Anything": 1})
    assert is_intrinsic({"Ref": "X"})


# -- references ---------------------------------------------------------------------------


def test_references_finds_every_form() -> None:
    value = {
        "A": {"Ref": "Queue"},
        "B": {"Fn::GetAtt": ["Topic", "TopicName"]},
        "C": {"Fn::GetAtt": "Bucket.Arn"},
        "D": {"Fn::Sub": "${Key.Arn}/${Table}/${AWS::Region}/${!Literal}"},
        "E": {"Fn::Sub": ["${Local}-${Role}", {"Local": {"Ref": "Fn"}}]},
        "F": [{"Ref": "AWS::AccountId"}, {"Fn::Join": ["", [{"Ref": "Param"}]]}],
    }
    assert references(value) == {"Queue", "Topic", "Bucket", "Key", "Table", "Role", "Fn", "Param"}
