"""Kafka edge of rollguard: the Faust monitor, its topics and the event emitter."""
