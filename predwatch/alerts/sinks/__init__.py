"""Alert sinks: Alertmanager, webhooks (Alertmanager or Slack format), a Kafka topic, the log.

``build.build_notifier(settings, kafka)`` makes a ``Notifier`` with one independent worker per
configured sink; ``notifier.notify(notifications)`` returns at once, and
``notifier.counts()`` says what was delivered, retried, dropped and superseded per sink.

This package imports nothing at import time, so the config can import ``sinks.settings``
without the HTTP client and the sinks.
"""
