"""Debian packages the local servers and some tests need (``redis-server``, ``kcat``,
``chromium``, Java and Maven for the Kafka broker): found on ``PATH``, else installed with
``apt-get`` when running as root, else a clear error naming the package. Standard library
only."""

from __future__ import annotations

import os
import shutil
import subprocess

from rollguard.base.errors import ConfigError


def redis_server_binary() -> str:
    """Path of ``redis-server``, installed from Debian's packages when missing."""
    return debian_binary("redis-server")


def kcat_binary() -> str:
    """Path of ``kcat`` (librdkafka's command-line client: the cross-client tests produce
    with it), installed from Debian's packages when missing."""
    return debian_binary("kcat")


def chromium_binary() -> str:
    """Path of Debian's ``chromium`` (the status page's test loads the page in it, headless),
    installed from Debian's packages when missing."""
    return debian_binary("chromium")


def debian_binary(name: str) -> str:
    """Path of the command ``name`` from the Debian package of the same name, installed
    when missing."""
    found = shutil.which(name)
    if found:
        return found
    apt_install(name, needed_for=name)
    return shutil.which(name) or f"/usr/bin/{name}"


def apt_install(package: str, needed_for: str) -> None:
    """Install a Debian package (as root) or say exactly what is missing."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ConfigError(f"{needed_for} is missing; install the Debian package {package}")
    print(f"installing {package} from Debian's packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env,
                   stdout=subprocess.DEVNULL)

