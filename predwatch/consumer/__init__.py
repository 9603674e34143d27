"""Sources of events: Kafka topics and JSON Lines files."""
