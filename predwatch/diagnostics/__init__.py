"""Diagnostics: where a model errs (online error trees, failing segments), and whether a
difference between model versions, or before and after a moment, is statistically real.

- ``predwatch.diagnostics.settings``: ``DiagnosticsSettings`` (the ``diagnostics:`` section).
- ``predwatch.diagnostics.tree``: ``ErrorTree``, a Hoeffding tree on each pair's error.
- ``predwatch.diagnostics.segments``: ``find_segments`` and ``ModelDiagnostics``, the
  per-model state the monitor updates with matched pairs.
- ``predwatch.diagnostics.compare``: statistical tests with effect sizes and intervals.

This package imports nothing at import time, so ``predwatch.config`` can import its settings
alone. ``predwatch compare`` is ``predwatch.commands.compare``.
"""
