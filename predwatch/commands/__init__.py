"""The verbs of the ``predwatch`` command, one module each, outside the core.

``predwatch.cli`` parses the command line and imports a verb's module only when that
verb runs, so ``predwatch --help`` loads none of them. Each module has
``main(args) -> int``; the verbs read and write files, the core never does.

- ``run``: the service on Kafka; ``demo``: the service on an embedded broker.
- ``replay``: prediction and label files through the monitor, a JSON summary out.
- ``compare``: statistical comparisons of versions, or of before and after a moment.
- ``profile``: reference profiles for data drift from a file of predictions.
- ``check_config``: every problem of a config file at once.

A problem the user can fix raises ``UsageError``: the CLI prints its lines and exits 2.
"""

from __future__ import annotations


class UsageError(Exception):
    """A problem the user can fix (config, arguments, files); one sentence per line.

    >>> str(UsageError("a.yaml: models: is required", "a.yaml: join.grace: ..."))
    'a.yaml: models: is required\\na.yaml: join.grace: ...'
    """

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)
