"""The status page (``rollguard web``): a live view of every service for the on-call."""
