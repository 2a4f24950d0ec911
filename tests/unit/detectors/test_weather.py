"""The stable release against its history (detectors/weather.py) and the fleet's view
(detectors/fleet.py): plain data in, storms and incidents out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.detectors.accumulate import Bucket
from rollguard.detectors.fleet import FleetView, Move
from rollguard.detectors.policy import default_policy
from rollguard.detectors.weather import Weather

POLICY = default_policy()
CALM = [500, 2.0, 2.0]  # 0.4 % errors over 500 samples
STORM = [500, 150.0, 150.0]  # 30 %


def run(entries: list[list[float]]) -> tuple[Weather, Bucket, list[dict[str, int]]]:
    weather, history = Weather(), {"error": [20_000.0, 100.0, 100.0]}
    began = [weather.close(b, {"error": e}, history, POLICY) for b, e in enumerate(entries)]
    return weather, history, began


def test_a_storm_begins_where_the_stable_moved_and_never_joins_the_history() -> None:
    weather, history, began = run([CALM] * 5 + [STORM] * 6 + [CALM] * 8)
    assert began[5] == {"error": 5}
    assert not weather.storming("error")
    _, without, _ = run([CALM] * 13)
    assert history == without  # the storm's six buckets were dropped, the calm ones kept


def test_during_a_storm_the_baseline_is_the_stable_at_the_same_moments() -> None:
    """The newest strata of the storm, pooled until they hold the rule's min_samples."""
    weather, history, _ = run([CALM] * 5 + [[100, 30.0, 30.0], [100, 25.0, 25.0],
                                            [100, 35.0, 35.0]])
    ref, kind = weather.baseline("error", POLICY.metrics["error"], history)
    assert kind == "concurrent"
    assert ref == [200.0, 60.0, 60.0]
    assert weather.baseline("latency_ms", POLICY.metrics["latency_ms"], history)[1] == "history"


def test_a_storm_longer_than_an_episode_is_the_new_normal() -> None:
    longest = int(POLICY.max_episode_seconds / POLICY.bucket_seconds)
    weather, history, _ = run([CALM] * 3 + [STORM] * (longest + 2))
    assert not weather.storming("error")
    assert history["error"][1] / history["error"][0] > 0.2  # the storm's level joined it


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([CALM, STORM, [40, 0.0, 0.0], [40, 9.0, 9.0]]),
                min_size=1, max_size=60),
       st.integers(0, 59))
def test_weather_state_round_trips_anywhere(entries: list[list[float]], cut: int) -> None:
    straight, history, began = run(entries)
    weather, h2 = Weather(), {"error": [20_000.0, 100.0, 100.0]}
    again = []
    for b, e in enumerate(entries):
        if b == cut:
            weather = Weather.from_plain(weather.to_plain())
        again.append(weather.close(b, {"error": e}, h2, POLICY))
    assert again == began and h2 == history and weather.to_plain() == straight.to_plain()


def test_fleet_rule_alerts_an_incident_once_and_names_who_moved() -> None:
    view = FleetView(POLICY)
    for i in range(6):
        view.add(Move(f"svc-{i}", "error", 1000.0 + 30 * i))
    view.add(Move("far", "error", 1000.0 + POLICY.fleet_window_seconds + 200))
    first, new = view.rule(Move("svc-2", "error", 1060.0))
    assert new and first is not None and first.services[0] == "svc-2"
    assert sorted(first.services) == [f"svc-{i}" for i in range(6)]
    again, new_again = view.rule(Move("svc-4", "error", 1120.0))
    assert again is first and not new_again


@pytest.mark.parametrize(("moved", "held"), [(3, False), (4, False), (5, True), (9, True)])
def test_fleet_min_services_counts_the_service_itself(moved: int, held: bool) -> None:
    view = FleetView(POLICY)
    for i in range(moved):
        view.add(Move(f"svc-{i}", "latency_ms", 30.0 * i))
    assert (view.rule(Move("svc-0", "latency_ms", 0.0))[0] is not None) == held


def test_moves_of_other_metrics_or_times_do_not_count() -> None:
    view = FleetView(POLICY)
    for i in range(8):
        view.add(Move(f"a-{i}", "cost_usd", 0.0))
        view.add(Move(f"b-{i}", "error", 10_000.0))
    assert view.rule(Move("x", "error", 0.0)) == (None, False)


def test_local_moves_are_shared_once_and_heard_ones_not_again() -> None:
    view = FleetView(POLICY)
    view.add(Move("a", "error", 1.0), local=True)
    view.add(Move("a", "error", 1.0), local=True)
    view.add(Move("b", "error", 1.0))
    assert view.outbox == [Move("a", "error", 1.0)]


@pytest.mark.parametrize("raw", [[], ["a", "error"], ["a", 3, 1.0], ["a", "e", "soon"],
                                 ["a", "e", True], {"service": "a"}])
def test_a_malformed_move_is_refused(raw: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        Move.from_list(raw)  # type: ignore[arg-type]
