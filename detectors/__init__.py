"""Pure decision core: windowed statistics and drift detection, no I/O."""

from detectors.decision import Decision
from detectors.events import Event, parse_event, validate_event
from detectors.monitor import ServiceMonitor
from detectors.policy import Policy, default_policy, load_policy

__all__ = [
    "Decision",
    "Event",
    "Policy",
    "ServiceMonitor",
    "default_policy",
    "load_policy",
    "parse_event",
    "validate_event",
]
