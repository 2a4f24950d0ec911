"""Pure decision core: windowed statistics and drift detection, no I/O.

Import from the modules (``detectors.policy``, ``detectors.monitor``...), or the public names
from ``rollguard``. Nothing is imported here, so that ``detectors.errors`` (which every edge
imports through ``rollguard.base.errors``) costs no more than itself.
"""
