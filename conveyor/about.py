"""Conveyor: AWS CDK v2 constructs and topologies for asynchronous integration.

Reusable constructs live in :mod:`conveyor.constructs`; the course topologies in
:mod:`conveyor.stacks`; Lambda handler assets under ``conveyor.lambdas`` (data, not imported).
"""

from importlib.metadata import version

__version__ = version("conveyor")
