"""``rollguard`` and ``python -m rollguard``: the command line, or one line saying how to get it
(it comes with the ``worker`` extra)."""

from __future__ import annotations

import sys


def run() -> None:
    """Run the command line; without the worker extra, say so in one line and exit 1."""
    try:
        from rollguard.cli import main
    except ModuleNotFoundError as exc:
        from rollguard.base.extras import missing_extra

        missing = missing_extra(exc, "the rollguard command line")
        if missing is None:
            raise
        print(f"error: {missing}", file=sys.stderr)
        sys.exit(1)
    main()


if __name__ == "__main__":
    run()
