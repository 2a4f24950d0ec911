"""Incident reports (``rollguard report``): the story of a rollback from its records."""
