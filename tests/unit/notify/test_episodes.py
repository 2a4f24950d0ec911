"""Notices grouped into one thread per episode: batching, rate limits, duplicates."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollguard.notify.episodes import Batcher, EpisodeBook, Message
from rollguard.notify.notices import read_record
from tests.support.notify_records import alert, approval_needed, outcome, rollback, staged


def told(timeline: list[tuple[float, dict[str, Any]]], batch_s: float = 2.0,
         repeat_s: float = 600.0, idle_s: float = 3600.0) -> list[Message]:
    """Feed ``(wall-clock second, record)`` pairs in order; every message told, in order."""
    book, batcher = EpisodeBook(repeat_s=repeat_s, idle_s=idle_s), Batcher(batch_s)
    messages: list[Message] = []
    for now, record in timeline:
        messages += batcher.due(now)
        update = book.add(read_record(record))
        if update is not None:
            batcher.add(update, now)
    return messages + batcher.due(float("inf"))


def summary(messages: list[Message]) -> list[tuple[str, str, list[str], tuple[str, ...]]]:
    return [(m.episode.service, m.episode.release, [n.kind for n in m.notices], m.pages)
            for m in messages]


@pytest.mark.parametrize("timeline, expected", [
    pytest.param([(0, alert(100)), (0, alert(100, kind="decision"))],
                 [("chat", "v2", ["alert"], ())], id="an alert and its audit twin: told once"),
    pytest.param([(0, rollback(100)), (0.01, outcome(100.01))],
                 [("chat", "v2", ["rollback-decided", "rolled-back"], ("trigger", "resolve"))],
                 id="a decision and its flip 10 ms later: one message"),
    pytest.param([(0, rollback(100, approval=True)), (0, approval_needed(100)),
                  (60, outcome(160))],
                 [("chat", "v2", ["rollback-decided", "approval-needed"], ("trigger",)),
                  ("chat", "v2", ["rolled-back"], ("resolve",))],
                 id="an approval: asked, then the flip in the same thread"),
    pytest.param([(0, alert(100)), (10, alert(110)), (20, alert(120)), (30, alert(130))],
                 [("chat", "v2", ["alert"], ())], id="identical alerts: held back"),
    pytest.param([(0, alert(100)), (10, alert(110, metric="latency_ms"))],
                 [("chat", "v2", ["alert"], ()), ("chat", "v2", ["alert"], ())],
                 id="alerts of two metrics: both told"),
    pytest.param([(0, alert(100)), (0, alert(100, service="mail"))],
                 [("chat", "v2", ["alert"], ()), ("mail", "v2", ["alert"], ())],
                 id="two services: two episodes"),
    pytest.param([(0, outcome(100, command_id="unknown"))],
                 [("chat", "", ["rolled-back"], ())],
                 id="an outcome of no known decision: its service's episode, paging nobody"),
    pytest.param([(0, rollback(100, approval=True)), (10, approval_needed(110)),
                  (20, outcome(120)), (30, rollback(130, command_id="c2"))],
                 [("chat", "v2", ["rollback-decided"], ("trigger",)),
                  ("chat", "v2", ["approval-needed"], ()),
                  ("chat", "v2", ["rolled-back"], ("resolve",)),
                  ("chat", "v2", ["rollback-decided"], ("trigger",))],
                 id="one trigger while paging, one resolve, a new trigger after it"),
    pytest.param([(0, {"type": "something-new", "at": 1.0}),
                  (0, outcome(1, op="promote", issued_by="ann"))],
                 [], id="records of no concern: nothing"),
])
def test_episodes_group_what_they_are_told(timeline: list[tuple[float, dict[str, Any]]],
                                           expected: list[Any]) -> None:
    assert summary(told(timeline)) == expected


def test_a_staged_cut_and_its_restore_are_told_in_one_thread_paging_nobody() -> None:
    """The cut and its flip make one message, the restore and its flip a later one, both
    under the same episode headline."""
    cut, restore = told([
        (0, staged(100, command_id="c1")),
        (0.01, outcome(100.01, command_id="c1", percent=10.0,
                       message="v2 now serves 10% of chat")),
        (60, staged(160, action="restore", command_id="c2")),
        (60.01, outcome(160.01, command_id="c2", op="promote", percent=50.0,
                        message="v2 now serves 50% of chat"))])
    assert summary([cut, restore]) == [
        ("chat", "v2", ["stage-cut", "stage-applied"], ()),
        ("chat", "v2", ["restore-decided", "restored"], ())]
    assert cut.episode.dedup_key == restore.episode.dedup_key
    assert (cut.first, restore.first) == (True, False)


def test_an_identical_alert_after_the_repeat_interval_is_told_with_the_count_held_back() -> None:
    messages = told([(t, alert(100 + t)) for t in range(0, 700, 100)], repeat_s=600)
    assert [m.held_back for m in messages] == [0, 5]
    assert [m.first for m in messages] == [True, False]


def test_the_outcome_names_the_release_of_its_episode_in_what_to_do() -> None:
    (message,) = told([(0, rollback(100, command_id="c9", release="v7")),
                       (0, outcome(100, command_id="c9"))])
    assert message.notices[-1].todo.endswith("rollguard promote chat v7 --percent 10")


def test_an_episode_quiet_for_longer_than_idle_ends_and_the_next_alert_opens_a_new_one() -> None:
    first, second = told([(0, alert(100)), (5000, alert(5000, metric="cost_usd"))], idle_s=3600)
    assert first.episode.dedup_key != second.episode.dedup_key
    assert second.first


records = st.one_of(
    st.builds(alert, at=st.integers(0, 2000).map(float), service=st.sampled_from(["a", "b"]),
              metric=st.sampled_from(["error", "toxicity"]),
              kind=st.sampled_from(["alert", "decision"])),
    st.builds(rollback, at=st.integers(0, 2000).map(float),
              command_id=st.sampled_from(["c1", "c2"]), service=st.sampled_from(["a", "b"])),
    st.builds(outcome, at=st.integers(0, 2000).map(float),
              command_id=st.sampled_from(["c1", "c2", "c3"]),
              service=st.sampled_from(["a", "b"])),
)


@given(st.lists(st.tuples(st.integers(0, 100).map(float), records), max_size=40))
def test_every_notice_is_told_once_in_its_own_services_thread_and_repeats_are_rare(
        timeline: list[tuple[float, dict[str, Any]]]) -> None:
    timeline.sort(key=lambda pair: pair[0])
    messages = told(timeline, repeat_s=600)
    notices = [n for m in messages for n in m.notices]
    assert len({n.fingerprint for n in notices}) == len(notices)
    assert all(n.service == m.episode.service for m in messages for n in m.notices)
    alerts = sorted((n.service, n.repeat_key, n.at) for n in notices if n.kind == "alert")
    for (s1, k1, t1), (s2, k2, t2) in itertools.pairwise(alerts):
        assert (s1, k1) != (s2, k2) or t2 - t1 >= 600


def test_a_fleet_incident_is_one_notice_and_its_held_rollbacks_none() -> None:
    """The fleet alert names the incident and says where to look; the services held as
    part of it add nothing (one alert for the fleet, not one per service)."""
    evidence = {"metric": "error", "fleet": {"metric": "error", "since": 1.0,
                                             "services": ["a", "b", "c", "d", "e"]}}
    fleet = {"type": "decision", "ts": 10.0, "service": "a", "release": "v2",
             "action": "alert", "verdict": "fleet", "reason": "Fleet-wide incident: ...",
             "evidence": evidence}
    notice = read_record(fleet)
    assert notice is not None and notice.kind == "alert"
    assert notice.title == "Fleet-wide incident: error moved at once on 5 services"
    assert "upstream" in notice.todo
    assert read_record({**fleet, "service": "b", "verdict": "held"}) is None
