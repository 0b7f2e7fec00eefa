"""CloudFormation intrinsic functions, resolved against what the sandbox has deployed.

:class:`Resolver` replaces ``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` (both forms), ``Fn::Join``,
``Fn::Select``, ``Fn::Split``, ``Fn::If`` (with the template's ``Conditions``:
``Fn::Equals``, ``Fn::And``, ``Fn::Or``, ``Fn::Not``, ``Condition``), ``Fn::GetAZs``,
``Fn::FindInMap``, ``Fn::Base64`` and the pseudo parameters by values. ``AWS::NoValue``
removes the key (or list item) that holds it. ``Fn::ImportValue`` and any other intrinsic
raise :class:`IntrinsicError` naming the logical id and the path of the value.

:func:`references` lists the logical ids a value refers to (for ordering).

Modules: :mod:`.values` (``NO_VALUE``, the error, helpers), :mod:`.resolver` (``Ref``,
``Fn::GetAtt``, parameters, dispatch), :mod:`.functions` (string and list functions, one
registry :data:`~.functions.FUNCTIONS`), :mod:`.conditions`, :mod:`.references`.
"""

from conveyor.sandbox.intrinsics.functions import availability_zones
from conveyor.sandbox.intrinsics.references import references
from conveyor.sandbox.intrinsics.resolver import Resolver, pseudo_parameters, stack_id
from conveyor.sandbox.intrinsics.values import (
    AVAILABILITY_ZONE_LETTERS,
    NO_VALUE,
    PARTITION,
    URL_SUFFIX,
    IntrinsicError,
    is_intrinsic,
)

__all__ = [
    "AVAILABILITY_ZONE_LETTERS",
    "NO_VALUE",
    "PARTITION",
    "URL_SUFFIX",
    "IntrinsicError",
    "Resolver",
    "availability_zones",
    "is_intrinsic",
    "pseudo_parameters",
    "references",
    "stack_id",
]
