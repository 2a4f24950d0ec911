"""The local servers the project develops and tests against (Kafka, Redis), and how they are
installed and started: ``scripts/services up|down|status``. Not part of the installed package."""
