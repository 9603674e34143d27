"""kafka-python client settings from predwatch's ``kafka`` section, security included.

Secrets are read from their ``SecretStr`` only here, into the client's
settings; they are never logged.

>>> from predwatch.config import KafkaSettings
>>> consumer_settings(KafkaSettings(bootstrap_servers="a:9092, b:9092"))["bootstrap_servers"]
['a:9092', 'b:9092']
"""

from __future__ import annotations

from typing import Any

from kafka.coordinator.assignors.range import RangePartitionAssignor

from predwatch.config import KafkaSettings

BOOTSTRAP_TIMEOUT_MS = 5000  # fail fast at start, then retry with backoff


def client_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python settings common to consumers and producers, security included."""
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in kafka.bootstrap_servers.split(",") if s.strip()],
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
    }
    optional = {
        "sasl_mechanism": kafka.sasl_mechanism,
        "sasl_plain_username": kafka.sasl_plain_username,
        "sasl_plain_password": (
            kafka.sasl_plain_password.get_secret_value() if kafka.sasl_plain_password else None
        ),
        "ssl_cafile": kafka.ssl_cafile,
        "ssl_certfile": kafka.ssl_certfile,
        "ssl_keyfile": kafka.ssl_keyfile,
        "ssl_password": kafka.ssl_password.get_secret_value() if kafka.ssl_password else None,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        config["ssl_check_hostname"] = kafka.ssl_check_hostname
    return config


def consumer_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """The group consumer's settings: manual commits, range assignment, then ``kafka.client``."""
    session_ms = int(kafka.session_timeout * 1000)
    config = client_settings(kafka) | {
        "group_id": kafka.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": kafka.auto_offset_reset,
        "partition_assignment_strategy": [RangePartitionAssignor],
        "max_poll_records": kafka.max_poll_records,
        "session_timeout_ms": session_ms,
        "heartbeat_interval_ms": max(100, session_ms // 3),
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
    }
    return config | kafka.client
