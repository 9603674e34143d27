"""Alert rules over predwatch's figures and their lifecycle (pending -> firing -> resolved).

The core is pure: ``AlertEngine.evaluate(summary, now)`` returns the transitions; sinks
deliver them elsewhere.
"""

from predwatch.alerts.engine import ActiveAlert, AlertEngine, Transition, fingerprint
from predwatch.alerts.lifecycle import ALLOWED, Phase, State, advance, signal_of
from predwatch.alerts.rules import AlertKey, Observation, observe
from predwatch.alerts.settings import FIGURES, AlertSettings, Figure, RuleSettings, check_alerts

__all__ = [
    "ALLOWED",
    "FIGURES",
    "ActiveAlert",
    "AlertEngine",
    "AlertKey",
    "AlertSettings",
    "Figure",
    "Observation",
    "Phase",
    "RuleSettings",
    "State",
    "Transition",
    "advance",
    "check_alerts",
    "fingerprint",
    "observe",
    "signal_of",
]
