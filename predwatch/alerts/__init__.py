"""Alert rules over predwatch's figures and their lifecycle (pending -> firing -> resolved).

The core is pure: ``engine.AlertEngine.evaluate(report, now)`` returns the transitions;
``sinks`` deliver them elsewhere. Rules are checked against the catalogue of figures
(``settings.check_alerts``).

This package imports nothing at import time, so the config can import ``alerts.settings``
alone.
"""
