"""The life of one alert: inactive -> pending -> firing -> resolved, as a pure step function.

Each evaluation classifies the rule's current observation as a ``Signal``:
``"breach"`` (past the threshold, with at least ``min_samples``), ``"hold"`` (between the
threshold and ``clear``: keeps a firing alert firing, but breaks a pending one) or ``"ok"``
(past ``clear``, undefined, or too few samples). ``advance`` then moves the alert's ``Phase``.

>>> phase = Phase()
>>> for now, signal in [(0, "breach"), (60, "breach"), (120, "hold"), (180, "ok")]:
...     phase = advance(phase, signal, now, for_=60.0, keep_firing_for=0.0)
...     print(now, phase.state)
0 pending
60 firing
120 firing
180 resolved
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from predwatch.alerts.settings import RuleSettings

State = Literal["inactive", "pending", "firing", "resolved"]
Signal = Literal["breach", "hold", "ok"]

ALLOWED: frozenset[tuple[State, State]] = frozenset(
    {
        ("inactive", "pending"),
        ("inactive", "firing"),  # firing at once when `for` is 0
        ("pending", "firing"),
        ("pending", "inactive"),
        ("firing", "resolved"),
        ("resolved", "pending"),
        ("resolved", "firing"),
    }
)
"""Every state change ``advance`` can make (a resolved alert is later forgotten silently)."""


def signal_of(rule: RuleSettings, value: float | None, samples: int | None) -> Signal:
    """How ``value`` (``samples`` None: always enough) stands against ``rule``.

    >>> rule = RuleSettings(name="Low", metric="accuracy", below=0.9, clear=0.92,
    ...                     min_samples=100)
    >>> [signal_of(rule, v, n) for v, n in [(0.8, 100), (0.8, 99), (0.91, 500), (0.95, 500)]]
    ['breach', 'ok', 'hold', 'ok']
    """
    if value is None or (samples is not None and samples < rule.min_samples):
        return "ok"
    if rule.direction == "below":
        if value < rule.threshold:
            return "breach"
        return "hold" if value < rule.clear_at else "ok"
    if value > rule.threshold:
        return "breach"
    return "hold" if value > rule.clear_at else "ok"


@dataclass(frozen=True)
class Phase:
    """Where an alert is in its life, and since when (times are the caller's clock)."""

    state: State = "inactive"
    active_since: float | None = None  # the condition has held since (pending and firing)
    starts_at: float | None = None  # firing since
    cleared_since: float | None = None  # firing, but the condition cleared at
    ends_at: float | None = None  # resolved at


def advance(phase: Phase, signal: Signal, now: float, for_: float, keep_firing_for: float) -> Phase:
    """The phase after one evaluation at ``now`` that saw ``signal``.

    Fires once the condition has held for ``for_``; a firing alert resolves once the
    condition has been clear for ``keep_firing_for`` (at the first clear evaluation when 0).
    """
    state = phase.state
    if state in ("inactive", "resolved"):
        if signal != "breach":
            return phase
        if for_ <= 0:
            return Phase("firing", active_since=now, starts_at=now)
        return Phase("pending", active_since=now)
    if state == "pending":
        if signal != "breach":
            return Phase()
        assert phase.active_since is not None
        if now - phase.active_since >= for_:
            return replace(phase, state="firing", starts_at=now)
        return phase
    # firing
    if signal != "ok":
        return replace(phase, cleared_since=None)
    cleared_since = now if phase.cleared_since is None else phase.cleared_since
    if now - cleared_since >= keep_firing_for:
        return replace(phase, state="resolved", cleared_since=None, ends_at=now)
    return replace(phase, cleared_since=cleared_since)
