"""Alert rules over predwatch's figures and their lifecycle (pending -> firing -> resolved).

The core is pure: ``engine.AlertEngine.evaluate(summary, now)`` returns the transitions;
``sinks`` deliver them elsewhere. ``settings`` holds the ``alerts:`` section of the config.

This package imports nothing at import time, so the config can import ``alerts.settings``
alone.
"""
