"""Conveyor's local sandbox: deploys synthesized templates into moto and runs the handlers
in-process (see the README, "Local sandbox"). The modules, and how to add a resource type or
an event source: ``conveyor/sandbox/README.md``."""
