"""The pointer store on the real Redis: releases, flips, races, idempotency, refusals, history."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from rollguard.actions.commands import sign
from rollguard.actions.pointer import PointerStore
from rollguard.actions.state import decode
from rollguard.base.errors import (
    PointerConflict,
    ReleaseConflict,
    ServicePinned,
    UnknownComponent,
    UnknownRelease,
    UnknownService,
)
from tests.support.pointer import SECRET, Issue, command

pytestmark = [pytest.mark.integration]


async def test_registering_a_release_again_with_other_contents_is_refused(
    store: PointerStore, service: str
) -> None:
    """A release name is immutable: same contents again is fine, other contents conflict."""
    await store.register_release(service, "v1", {"model": "m1", "prompt": "p1"})
    again = await store.register_release(service, "v1", {"prompt": "p1", "model": "m1"})
    assert again.components == {"model": "m1", "prompt": "p1"}
    with pytest.raises(ReleaseConflict, match="v1"):
        await store.register_release(service, "v1", {"model": "m1", "prompt": "p2"})
    assert [r.name for r, _ in await store.releases(service)] == ["v1"]


async def test_reading_a_service_without_pointer_raises_unknown_service(
    store: PointerStore, service: str
) -> None:
    """A service nobody promoted anything for is unknown."""
    with pytest.raises(UnknownService):
        await store.read(service)


async def test_first_promote_makes_the_release_active_and_stable(
    released: PointerStore, service: str
) -> None:
    """The first promote creates the pointer at epoch 1 with the release's components."""
    state = await released.read(service)
    assert (state.active, state.stable, state.epoch) == ("v1", "v1", 1)
    assert state.active_components["model"] == "m1"
    assert state.watched_release is None


async def test_promote_then_full_rollback_returns_to_stable(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """Promote v2, then roll back: v1 serves again and the epoch moved twice."""
    promoted = await issue("promote", release="v2")
    assert (promoted.status, promoted.epoch_before, promoted.epoch_after) == ("applied", 1, 2)
    assert (await released.read(service)).watched_release == "v2"
    rolled = await issue("rollback", by="rule:error-rate", reason="errors up", evidence={"z": 4.2})
    assert rolled.status == "applied"
    state = await released.read(service)
    assert (state.active, state.stable, state.epoch) == ("v1", "v1", 3)
    assert state.active_components["model"] == "m1"
    again = await issue("promote", release="v2")
    assert again.status == "applied", "a rolled-back release can be promoted again"


async def test_unknown_release_and_component_are_refused_and_recorded(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """Unknown names give refusals with a code that maps to our exceptions."""
    missing = await issue("promote", release="v9")
    assert (missing.status, missing.code) == ("refused", "unknown_release")
    with pytest.raises(UnknownRelease):
        missing.raise_for_status()
    await issue("promote", release="v2")
    bad = await issue("rollback", components=("tokenizer",))
    with pytest.raises(UnknownComponent, match="tokenizer"):
        bad.raise_for_status()
    codes = [e["code"] for e in await released.history(service)]
    assert codes[-3:] == ["unknown_release", "", "unknown_component"]


async def test_racing_flips_with_the_same_expected_epoch_have_exactly_one_winner(
    released: PointerStore, service: str
) -> None:
    """Fifty concurrent compare-and-set flips: one applies, the others are conflicts."""
    commands = [
        command(service, "promote", release="v2", percent=float(i % 90 + 1), expected_epoch=1)
        for i in range(50)
    ]
    outcomes = await asyncio.gather(*(released.execute(c, time.time()) for c in commands))
    statuses = sorted(o.status for o in outcomes)
    assert statuses.count("applied") == 1
    assert statuses.count("conflict") == 49
    winner = next(o for o in outcomes if o.status == "applied")
    state = await released.read(service)
    assert state.epoch == 2
    assert state.command_id == winner.command_id
    with pytest.raises(PointerConflict):
        next(o for o in outcomes if o.status == "conflict").raise_for_status()


async def test_racing_flips_without_expected_epoch_apply_one_per_epoch(
    released: PointerStore, service: str
) -> None:
    """Concurrent plain flips re-plan when they lose: every one applies, each at its own epoch."""
    # Fewer than MAX_ATTEMPTS, so even the flip that loses every round gets its turn.
    commands = [
        command(service, "promote", release="v2", percent=float(i + 1)) for i in range(15)
    ]
    outcomes = await asyncio.gather(*(released.execute(c, time.time()) for c in commands))
    assert all(o.status == "applied" for o in outcomes)
    assert sorted(o.epoch_after for o in outcomes) == list(range(2, 17))
    assert all(o.epoch_after == o.epoch_before + 1 for o in outcomes)
    assert (await released.read(service)).epoch == 16


async def test_the_same_idempotency_key_applies_once(
    released: PointerStore, service: str
) -> None:
    """A command re-issued with the same key for the same request changes nothing."""
    first = command(service, "rollback", idempotency_key="incident-7", release="v2")
    retry = command(service, "rollback", idempotency_key="incident-7", release="v2")
    assert (await released.execute(first, time.time())).status == "applied"
    outcome = await released.execute(retry, time.time())
    assert (outcome.status, outcome.code) == ("already_applied", "duplicate")
    assert outcome.epoch_before == outcome.epoch_after == 2
    assert (await released.read(service)).epoch == 2


@pytest.mark.parametrize("replay", ["same-command", "same-key-other-request"])
async def test_a_replayed_command_is_refused_and_recorded(
    released: PointerStore, service: str, replay: str
) -> None:
    """A command id that already ran, or an idempotency key used for another request, is
    refused as a replay, recorded, and the pointer stays as it is."""
    first = command(service, "rollback", idempotency_key="incident-8", release="v2")
    assert (await released.execute(first, time.time())).status == "applied"
    again = first if replay == "same-command" else command(
        service, "promote", idempotency_key="incident-8", release="v2")
    outcome = await released.execute(again, time.time())
    assert (outcome.status, outcome.code) == ("refused", "replayed")
    assert (await released.read(service)).epoch == 2
    last = (await released.history(service))[-1]
    assert (last["outcome"], last["code"], last["command_id"]) == (
        "refused", "replayed", again.command_id)


async def test_refusals_for_a_service_that_does_not_exist_make_no_keys(
    store: PointerStore, service: str
) -> None:
    """A forged command or a rollback for an unknown service is refused without a history."""
    forged = replace(command(service, "rollback", release="v1"), signature="00")
    unknown = command(service, "rollback", release="v1")
    for bad in (forged, unknown):
        outcome = await store.execute(bad, time.time())
        assert outcome.status == "refused" and outcome.history_id == ""
    assert [k async for k in store.client.scan_iter(match=f"rollguard:{{{service}}}:*")] == []


async def test_a_flip_already_made_is_reported_as_already_applied(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """Rolling back a service that already serves stable is a normal, recorded no-op."""
    outcome = await issue("rollback", by="rule:latency")
    assert (outcome.status, outcome.code) == ("already_applied", "no_change")
    assert (await released.read(service)).epoch == 1


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda c: replace(c, signature=""), "unsigned"),
        (lambda c: replace(c, release="v1"), "bad_signature"),
        (lambda c: sign(replace(c, signature=""), b"wrong-secret"), "bad_signature"),
        (lambda c: sign(replace(c, expires_at=time.time() - 1), SECRET), "expired"),
    ],
    ids=["unsigned", "altered", "wrong-secret", "expired"],
)
async def test_forged_and_expired_commands_are_refused_and_recorded(
    released: PointerStore, service: str, tamper, code: str
) -> None:
    """A command that is unsigned, altered, signed with another secret or expired never applies."""
    bad = tamper(command(service, "promote", release="v2"))
    outcome = await released.execute(bad, time.time())
    assert (outcome.status, outcome.code) == ("refused", code)
    assert (await released.read(service)).active == "v1"
    last = (await released.history(service))[-1]
    assert (last["outcome"], last["code"], last["command_id"]) == ("refused", code, bad.command_id)


async def test_partial_rollback_derives_a_release_mixing_candidate_and_stable(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """Rolling back model and prompt keeps v2's index and takes v1's model and prompt."""
    await issue("promote", release="v2")
    outcome = await issue("rollback", components=("prompt", "model"))
    assert outcome.status == "applied"
    state = await released.read(service)
    assert state.active == "v2~rollback(model,prompt)->v1"
    assert state.active_components == {"model": "m1", "prompt": "p1", "index": "i2", "policy": "s1"}
    derived = await released.release(service, state.active)
    assert derived.derived_from is not None and derived.derived_from.release == "v2"
    assert derived.components == state.active_components
    further = await issue("rollback", components=("index",))
    assert further.status == "applied"
    assert (await released.read(service)).active == "v2~rollback(index,model,prompt)->v1"


async def test_partial_rollback_of_a_candidate_keeps_its_share(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """A staged candidate rolled back partly stays the candidate at the same share."""
    await issue("promote", release="v2", percent=20)
    await issue("rollback", components=("model",))
    state = await released.read(service)
    assert (state.active, state.candidate, state.percent) == ("v1", "v2~rollback(model)->v1", 20)
    assert state.candidate_components is not None
    assert state.candidate_components["model"] == "m1"


async def test_staged_rollback_cuts_the_share_then_removes_the_candidate(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """A candidate at 50% and a cohort: cut to 10%, drop the cohort, then 0% clears it."""
    await issue("promote", release="v2", percent=50, cohorts=("beta", "staff"))
    await issue("rollback", percent=10, cohorts=("beta",))
    state = await released.read(service)
    assert (state.candidate, state.percent, state.cohorts) == ("v2", 10.0, ("staff",))
    assert (await issue("rollback", percent=20)).code == "invalid", "a rollback never raises it"
    await issue("rollback", percent=0, cohorts=("staff",))
    state = await released.read(service)
    assert (state.candidate, state.percent, state.cohorts, state.active) == (None, 0, (), "v1")


async def test_a_pinned_service_refuses_rules_and_needs_force_from_people(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """Pinned: a rule's flip is refused even with force; an operator's needs force."""
    await issue("promote", release="v2")
    assert (await issue("pin")).status == "applied"
    by_rule = await issue("rollback", by="rule:error-rate", force=True)
    with pytest.raises(ServicePinned):
        by_rule.raise_for_status()
    assert (await issue("rollback")).code == "pinned"
    assert (await issue("rollback", force=True)).status == "applied"
    assert (await issue("unpin")).status == "applied"
    state = await released.read(service)
    assert (state.active, state.pinned) == ("v1", False)


async def test_mark_stable_moves_the_rollback_target(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """After v2 is marked stable, a rollback goes to v2, not v1."""
    await issue("promote", release="v2")
    assert (await issue("mark_stable")).status == "applied"
    state = await released.read(service)
    assert (state.stable, state.watched_release) == ("v2", None)


async def test_history_records_every_command_with_epochs_and_issuer(
    released: PointerStore, service: str, issue: Issue
) -> None:
    """Each command leaves one entry: who, what, outcome, epoch before and after, evidence."""
    await issue("promote", release="v2")
    await issue("rollback", by="rule:error-rate", reason="errors", evidence={"rate": 0.12})
    await issue("rollback", by="rule:error-rate")
    stale = command(service, "promote", release="v2", expected_epoch=1)
    await released.execute(stale, time.time())
    entries = await released.history(service)
    summary = [(e["op"], e["issued_by"], e["outcome"], e["epoch_before"], e["epoch_after"])
               for e in entries]
    assert summary == [
        ("promote", "ann", "applied", 0, 1),
        ("promote", "ann", "applied", 1, 2),
        ("rollback", "rule:error-rate", "applied", 2, 3),
        ("rollback", "rule:error-rate", "already_applied", 3, 3),
        ("promote", "ann", "conflict", 3, 3),
    ]
    assert entries[2]["command"]["evidence"] == {"rate": 0.12}
    assert entries[2]["command"]["reason"] == "errors"
    assert all(e["at"] > 0 for e in entries)


async def test_read_many_gives_each_pointer_and_none_for_services_without_one(
    released: PointerStore, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's batched refresh reads the same pointers as one read each, across
    MGET chunks, with None where a service has no pointer."""
    from rollguard.actions import pointer as pointer_module

    monkeypatch.setattr(pointer_module, "MGET_CHUNK", 2)
    names = [service, f"{service}-none-1", service, f"{service}-none-2", service]
    found = await released.read_many(names)
    assert found == {service: await released.read(service),
                     f"{service}-none-1": None, f"{service}-none-2": None}


async def redis_time(store: PointerStore) -> float:
    seconds, micros = await store.client.time()
    return seconds + micros / 1e6


async def test_updated_at_is_redis_own_time_of_the_change(
        store: PointerStore, service: str) -> None:
    """Not the writer's planning time (here 20 s behind): the script stamps the pointer with
    Redis's TIME, in the stored value, the published one and the outcome alike. A component
    named ``updated_at`` keeps its version."""
    await store.register_release(service, "v1", {"updated_at": "u1", "model": "m1"})
    pubsub = store.client.pubsub()
    await pubsub.subscribe(store.keys(service).changes)
    before = await redis_time(store)
    outcome = await store.execute(command(service, "promote", release="v1"), time.time() - 20)
    after = await redis_time(store)
    stored = await store.read(service)
    assert before <= stored.updated_at <= after
    assert outcome.state is not None and outcome.state.updated_at == stored.updated_at
    assert stored.active_components == {"updated_at": "u1", "model": "m1"}
    message = None
    while message is None or message["type"] != "message":
        message = await pubsub.get_message(timeout=5.0)
    assert decode(message["data"]) == stored and decode(message["data"]).updated_at == (
        stored.updated_at)
    await pubsub.aclose()
