"""Conveyor's local sandbox: deploys synthesized templates into moto and runs the handlers
in-process (see the README, "Local sandbox")."""
