"""Log sink: one structured line per notification on the ``predwatch.alerts`` logger.

>>> line(Notification("f1", "firing", {"alertname": "A", "model": "m"}, {"summary": "low"},
...                   0.0, value=0.5))
'alert firing alertname=A model=m value=0.5 fingerprint=f1 summary="low"'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from predwatch.alerts.sinks.delivery import Sink
from predwatch.alerts.sinks.notification import Notification, safe_annotations, safe_labels

logger = logging.getLogger("predwatch.alerts")


def _value(text: str) -> str:
    """``text`` bare when it is one plain word, else JSON-quoted (logfmt style)."""
    plain = text and all(c.isalnum() or c in "._-:/" for c in text)
    return text if plain else json.dumps(text, ensure_ascii=False)


def line(n: Notification) -> str:
    """The logfmt-style line logged for ``n``: status, labels, value, fingerprint, annotations."""
    fields = [f"{k}={_value(v)}" for k, v in safe_labels(n.labels).items()]
    if n.value is not None:
        fields.append(f"value={n.value:.6g}")
    fields.append(f"fingerprint={_value(n.fingerprint)}")
    annotations = safe_annotations(n.annotations).items()
    fields += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in annotations]
    return f"alert {n.status} " + " ".join(fields)


class LogSink(Sink):
    """Logs firing alerts at WARNING and resolved ones at INFO; never fails."""

    def __init__(self, name: str = "log", log: logging.Logger = logger) -> None:
        super().__init__(name)
        self._log = log

    def send(self, batch: Sequence[Notification]) -> None:
        """Log one line per notification."""
        for n in batch:
            self._log.log(logging.WARNING if n.firing else logging.INFO, "%s", line(n))
