"""Pure decision core: windowed statistics and drift detection, no I/O."""
