"""What the ``worker`` extra adds to the client a plain install is, and the one-line error
when a part that needs it is used without it.

A plain ``pip install rollguard`` is what a serving process needs (the pointer readers, the
emitters, the errors). The worker, the command line and the operator tools need
``pip install "rollguard[worker]"``.
"""

from __future__ import annotations

from rollguard.base.errors import MissingExtra

INSTALL_WORKER = "pip install 'rollguard[worker]'"
# Top-level modules of the worker extra's distributions, and of what they bring along.
WORKER_MODULES = frozenset({
    "aiohttp", "click", "cramjam", "faust", "mode", "numpy", "pandas", "prometheus_client",
    "rich", "river", "scipy", "yaml",
})


def missing_extra(exc: ModuleNotFoundError, what: str) -> MissingExtra | None:
    """The error to raise instead of ``exc`` when ``what`` failed to import a module of the
    worker extra; None when ``exc`` is about any other module (then re-raise ``exc`` itself).

    >>> print(missing_extra(ModuleNotFoundError("No module named 'faust'", name="faust"),
    ...                     "the worker"))
    the worker needs the worker extra (faust is not installed): pip install 'rollguard[worker]'
    >>> missing_extra(ModuleNotFoundError("No module named 'nope'", name="nope"), "x") is None
    True
    """
    module = (exc.name or "").partition(".")[0]
    if module not in WORKER_MODULES:
        return None
    return MissingExtra(f"{what} needs the worker extra ({module} is not installed): "
                        f"{INSTALL_WORKER}")
