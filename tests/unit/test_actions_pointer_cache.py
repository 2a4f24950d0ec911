"""The writer's table of decoded releases."""

from __future__ import annotations

from actions import pointer
from actions.pointer import decoded_release
from actions.releases import Release


def test_a_stored_release_is_decoded_once_and_by_its_exact_bytes() -> None:
    raw = Release("v1", {"model": "m1"}).to_json()
    first = decoded_release(raw)
    assert first == Release("v1", {"model": "m1"})
    assert decoded_release(bytes(raw)) is first
    other = decoded_release(Release("v1", {"model": "m2"}).to_json())
    assert other.components == {"model": "m2"}  # other bytes, however named, decode anew


def test_the_release_table_stays_bounded() -> None:
    for i in range(pointer.RELEASES_CACHED + 10):
        decoded_release(Release(f"r{i}", {"model": "m"}).to_json())
    assert 0 < len(pointer._releases) <= pointer.RELEASES_CACHED
