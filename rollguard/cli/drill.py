"""``rollguard drill``: rehearse the guard against the live deployment, once or on a schedule."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click
import orjson

from rollguard.base.errors import ConfigError, RollguardError
from rollguard.cli import dev_mode, run_until_stopped, warn_if_dev_secret
from rollguard.detectors.names import DRILL_PREFIX
from rollguard.drill import METRICS_ADDR, METRICS_VARIABLE, NOTIFY_METRICS_URL

if TYPE_CHECKING:
    from rollguard.drill.run import DrillSettings, Result


@click.command("drill")
@click.option("--service", default=DRILL_PREFIX, show_default=True,
              help=f"The drill's own service: a name starting with {DRILL_PREFIX}, never a "
                   "real service's.")
@click.option("--metric", default=None, help="The metric made worse (default: the policy's "
              "first whose action is rollback).")
@click.option("--base", type=float, default=None,
              help="Its healthy level, for a metric beyond the standard seven.")
@click.option("--rate", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="The drill's traffic, in events per second of event time.")
@click.option("--percent", type=click.FloatRange(1, 99), default=50.0, show_default=True,
              help="The canary's share of the drill's traffic.")
@click.option("--shift", type=click.FloatRange(min=1.5), default=10.0, show_default=True,
              help="How much worse the canary is, in tolerances of its metric.")
@click.option("--decision-wait", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds the worker may take to decide once the events were accepted.")
@click.option("--notify-metrics", default=NOTIFY_METRICS_URL, show_default=True,
              envvar="ROLLGUARD_DRILL_NOTIFY_URL",
              help="The notifier's /metrics, where the drill sees its notification delivered.")
@click.option("--no-notify", is_flag=True, help="Do not check the notification.")
@click.option("--every", default=None,
              help="Drill every DURATION (90s, 10m, 1h) until stopped, serving /metrics.")
@click.option("--metrics-addr", default=METRICS_ADDR, show_default=True,
              envvar=METRICS_VARIABLE,
              help="host:port of /metrics with --every (empty: none).")
@click.option("--json", "as_json", is_flag=True, help="Print each drill as JSON.")
def drill(service: str, metric: str | None, base: float | None, rate: float, percent: float,
          shift: float, decision_wait: float, notify_metrics: str, no_notify: bool,
          every: str | None, metrics_addr: str, as_json: bool) -> None:
    """Rehearse a regression on a drill service of its own and time every hop: events
    accepted, decision, command, pointer flip, a reader switched, notification delivered.

    Exits 1 naming the first hop that failed or took longer than its bound. Needs what the
    CLI needs to move a pointer (ROLLGUARD_SECRET, REDIS_URL) and the worker's topics
    (ROLLGUARD_TOPIC_*); ROLLGUARD_POLICY as the worker's. See docs/drill.md."""
    from rollguard.base.config import parse_duration
    from rollguard.drill.run import run_drill
    from rollguard.drill.timeline import Bounds
    from rollguard.drill.traffic import Shape

    try:
        settings = _settings(service, Shape(metric, base, rate, percent, shift),
                             Bounds(decision_s=decision_wait),
                             None if no_notify else notify_metrics)
        every_s = None if every is None else parse_duration(every)
        if every is not None and not every_s:
            raise ConfigError(f"--every: not a duration (90s, 10m, 1h): {every!r}")
    except RollguardError as exc:
        raise click.ClickException(str(exc)) from None
    warn_if_dev_secret(settings.worker.secret_is_default)
    from rollguard.cli.worker import worker_policy

    policy = worker_policy(settings.worker)
    if every_s is None:
        result = run_until_stopped(lambda: run_drill(settings, policy))
        if result is None:
            raise click.ClickException("drill stopped by a signal (its canary was taken away)")
        _show(result, as_json)
        if not result.verdict.passed:
            raise SystemExit(1)
        return
    run_until_stopped(lambda: _every(settings, policy, every_s, metrics_addr, as_json))


def _settings(service: str, shape: Any, bounds: Any, notify_url: str | None) -> DrillSettings:
    from rollguard.actions.keys import check_service
    from rollguard.drill.run import DrillSettings
    from rollguard.streams.settings import WorkerSettings

    if not check_service(service).startswith(DRILL_PREFIX):
        raise ConfigError(f"--service {service}: a drill service's name must start with "
                          f"{DRILL_PREFIX!r}, so that no real service is ever drilled")
    return DrillSettings(WorkerSettings.from_env(dev_mode()), service, shape, bounds,
                         notify_url)


async def _every(settings: DrillSettings, policy: Any, every_s: float, metrics_addr: str,
                 as_json: bool) -> None:
    from rollguard.drill.metrics import DrillMetrics
    from rollguard.drill.run import drill_every, last_success
    from rollguard.streams import metrics_http
    from rollguard.streams.settings import host_port

    metrics = DrillMetrics()
    metrics.last_success = await last_success(settings)
    addr = host_port(METRICS_VARIABLE, metrics_addr)
    runner = (await metrics_http.serve(metrics_http.bind(addr, METRICS_VARIABLE), metrics)
              if addr is not None else None)
    if addr is not None:
        click.echo(f"serving /metrics on http://{addr[0]}:{addr[1]}/metrics", err=True)

    def on_result(result: Result) -> None:
        metrics.record(result.verdict, result.plan, result.ended_at)
        _show(result, as_json)

    try:
        await drill_every(settings, policy, every_s, on_result)
    finally:
        if runner is not None:
            await runner.cleanup()


def _show(result: Result, as_json: bool) -> None:
    from rollguard.drill.timeline import lines

    if as_json:
        click.echo(orjson.dumps(_as_dict(result)).decode())
        return
    plan = result.plan
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(result.started_at))
    if plan is not None:
        click.echo(f"drill {plan.number} of {plan.service} at {when}: {plan.rule.name} of "
                   f"{plan.candidate} {plan.shape.shift:g}x its tolerance, "
                   f"{plan.shape.rate:g} events/s of event time, canary {plan.shape.percent:g}%")
    else:
        click.echo(f"drill at {when}")
    for line in lines(result.verdict):
        click.echo(line)


def _as_dict(result: Result) -> dict[str, Any]:
    verdict, plan, failed = result.verdict, result.plan, result.verdict.failed
    return {
        "passed": verdict.passed, "failed_hop": failed.hop.value if failed else None,
        "started_at": result.started_at, "ended_at": result.ended_at,
        "drill": plan.number if plan else None, "service": plan.service if plan else None,
        "candidate": plan.candidate if plan else None,
        "metric": plan.rule.name if plan else None,
        "expected_decision_s": plan.expected_s if plan else None,
        "hops": [{"hop": h.hop.value, "status": h.status, "at": h.at, "took": h.took,
                  "bound": h.bound, "note": h.note, "event_s": h.event_s}
                 for h in verdict.hops],
    }


COMMANDS = (drill,)
