"""The OpenTelemetry Collector the project runs locally, built once from Go modules (no
binary download reaches a development machine; the Go module proxy does): the Collector
Builder generates the sources of a distribution with exactly the components below, and
``go build`` compiles it into a cache shared by every checkout,
``~/.cache/rollguard/otelcol-VERSION-HASH/otelcol-rollguard`` (HASH: of the builder's
configuration, so another set of components is another build). A cold build takes about
four minutes on 2 cores. Standard library only (and the ``go`` command)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rollguard.base.errors import ConfigError

OTELCOL_VERSION = "0.165.0"  # the Collector Builder and the core components
STABLE_VERSION = "1.71.0"  # the core modules that are 1.x (the confmap providers)
CONTRIB_VERSION = "0.165.1"  # the contrib kafka exporter
GO_MINIMUM = (1, 26)  # the kafka exporter's go.mod says go 1.26.0
BINARY = "otelcol-rollguard"

CORE = "go.opentelemetry.io/collector"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib"

BUILDER_CONFIG = f"""dist:
  name: {BINARY}
  description: rollguard's local OpenTelemetry Collector (OTLP in, Kafka out)
  version: {OTELCOL_VERSION}
  output_path: ./src
receivers:
  - gomod: {CORE}/receiver/otlpreceiver v{OTELCOL_VERSION}
processors:
  - gomod: {CORE}/processor/batchprocessor v{OTELCOL_VERSION}
exporters:
  - gomod: {CORE}/exporter/debugexporter v{OTELCOL_VERSION}
  - gomod: {CONTRIB}/exporter/kafkaexporter v{CONTRIB_VERSION}
providers:
  - gomod: {CORE}/confmap/provider/envprovider v{STABLE_VERSION}
  - gomod: {CORE}/confmap/provider/fileprovider v{STABLE_VERSION}
  - gomod: {CORE}/confmap/provider/yamlprovider v{STABLE_VERSION}
"""


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rollguard"


def build_folder() -> Path:
    digest = hashlib.sha256(BUILDER_CONFIG.encode()).hexdigest()[:12]
    return cache_root() / f"otelcol-{OTELCOL_VERSION}-{digest}"


def cached_binary() -> Path | None:
    """The built Collector, or None when it is not built yet (nothing is built here)."""
    binary = build_folder() / BINARY
    return binary if (build_folder() / ".complete").exists() and binary.exists() else None


def collector_binary() -> Path:
    """The Collector's binary, built on first use (one build at a time, across processes:
    another checkout's test session waits for the build under way)."""
    found = cached_binary()
    if found:
        return found
    folder = build_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        found = cached_binary()
        if found:  # built by another process while this one waited
            return found
        go = go_command()
        print(f"building the OpenTelemetry Collector {OTELCOL_VERSION} from Go modules into "
              f"{folder} (about 4 min on 2 cores, once) ...", flush=True)
        started = time.monotonic()
        _build(go, folder)
        (folder / ".complete").write_text(f"{OTELCOL_VERSION} {time.monotonic() - started:.0f}s\n")
    return folder / BINARY


def go_command() -> str:
    """The ``go`` command, checked to be recent enough for the components."""
    go = shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if Path(p).exists()), None)
    if go is None:
        raise ConfigError("go is missing: the local OpenTelemetry Collector is built from Go "
                          f"modules; install Go {'.'.join(map(str, GO_MINIMUM))} or later")
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                             check=True).stdout.strip()
    found = re.match(r"go(\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) < GO_MINIMUM:
        raise ConfigError(f"{go} is {version}: the local OpenTelemetry Collector needs Go "
                          f"{'.'.join(map(str, GO_MINIMUM))} or later")
    return go


def _build(go: str, folder: Path) -> None:
    """Install the Builder, generate the distribution's sources, compile them (one package
    at a time: the machine stays usable), and put the binary in place."""
    tools = folder / "bin"
    env = {**os.environ, "GOBIN": str(tools), "CGO_ENABLED": "0",
           "PATH": f"{Path(go).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([go, "install", f"{CORE}/cmd/builder@v{OTELCOL_VERSION}"], env=env,
                   check=True)
    with tempfile.TemporaryDirectory(prefix="otelcol-build-") as work:
        config = Path(work, "builder-config.yaml")
        config.write_text(BUILDER_CONFIG)
        subprocess.run([str(tools / "builder"), "--config", str(config), "--skip-compilation"],
                       cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
        staging = Path(work, BINARY)
        subprocess.run([go, "build", "-p", "1", "-trimpath", "-ldflags=-s -w",
                        "-o", str(staging), "."], cwd=Path(work, "src"), env=env, check=True)
        shutil.move(str(staging), folder / BINARY)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
