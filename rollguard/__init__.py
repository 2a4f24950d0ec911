"""rollguard: watch generative-AI releases in production and roll them back when they regress."""

__version__ = "0.1.0"
