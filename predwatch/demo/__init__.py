"""Self-contained demo parts: an embedded Kafka-compatible broker and sample traffic."""
