#!/usr/bin/env python3
"""The CDK app: the one place that reads cdk context and builds every Conveyor stack.

Run through the CDK CLI (``make synth``); cdk.json runs ``python3 -P app.py`` so the repo root
stays off ``sys.path`` and the ``constructs/`` folder never shadows the ``constructs`` library.
"""

from aws_cdk import App

from conveyor.settings import Settings
from conveyor.topologies import attach_review_plugins, build

app = App()
settings = Settings.from_context(app.node.try_get_context)
build(app, settings)
attach_review_plugins(app)
app.synth()
