"""The status page: one self-contained HTML file that draws a ``/status`` document.

The page carries its style, its script (``page.css`` and ``page.js`` beside this
module) and the document itself, so it needs nothing from outside the machine: the
service serves it at ``/`` and, ``live``, the page re-reads ``./status`` every
``refresh`` seconds; ``predwatch replay --html`` writes it to a file. Charts are
inline SVG drawn by the page's own script.

The document is embedded as JSON in a ``<script type="application/json">`` block;
``<``, ``>`` and ``&`` are escaped, so no text from the monitored events can end
the block or inject markup.

>>> html = render_page({"models": [], "rule": "</script><b>x</b>"}, live=False)
>>> html.startswith("<!doctype html>"), "</script><b>" in html, "\\\\u003c/script" in html
(True, False, True)
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib.resources import files
from typing import Any

from predwatch.exporter.status import finite

REFRESH = 10.0  # seconds between the live page's reads of /status

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline';
  img-src data:; connect-src 'self'">
<title>$TITLE</title>
<style>
$STYLE</style>
</head>
<body>
<div id="app"><noscript>This page draws its charts with JavaScript; the same figures are
at ./status as JSON.</noscript></div>
<script type="application/json" id="status-config">$CONFIG</script>
<script type="application/json" id="status-data">$DATA</script>
<script>
$SCRIPT</script>
</body>
</html>
"""

PLACEHOLDER = re.compile(r"\$(TITLE|STYLE|CONFIG|DATA|SCRIPT)\b")


@cache
def _asset(name: str) -> str:
    return files("predwatch.exporter").joinpath(name).read_text(encoding="utf-8")


def _json(value: Any) -> str:
    """JSON safe inside a script block of an HTML page."""
    text = json.dumps(finite(value), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    document: dict[str, Any],
    live: bool,
    refresh: float = REFRESH,
    title: str = "predwatch status",
) -> str:
    """The page for ``document`` (see ``predwatch.exporter.status``); ``live`` pages re-read
    ``./status`` every ``refresh`` seconds, others are a fixed report."""
    config = {"live": live, "refresh": refresh, "title": title}
    replacements = {
        "$TITLE": html.escape(title),
        "$STYLE": _asset("page.css"),
        "$CONFIG": _json(config),
        "$DATA": _json(document),
        "$SCRIPT": _asset("page.js"),
    }
    # One pass, so that a "$SCRIPT" inside the data is never taken for a placeholder.
    return PLACEHOLDER.sub(lambda match: replacements[match.group(0)], TEMPLATE)
