"""What a backup writes for a key, given the histories on both sides (no server)."""

from __future__ import annotations

from runtime.ops.backup import Version, narrowest, plan


def v(etag: str, size: int = 1) -> Version:
    return Version("k", f"id-{etag}", etag, size)


MARK = Version("k", "id-marker", marker=True)


def test_an_empty_target_gets_the_whole_history_in_order() -> None:
    assert plan([v("a"), MARK, v("b")], [], history=True) == [v("a"), MARK, v("b")]


def test_what_the_target_holds_in_the_same_order_is_not_copied_again() -> None:
    source = [v("a"), v("b"), MARK]
    assert plan(source, [v("a"), v("b"), MARK], history=True) == []
    assert plan(source, [v("a")], history=True) == [v("b"), MARK]


def test_a_diverged_target_gets_the_rest_so_its_current_version_is_the_sources() -> None:
    # Same ETag, other size: not the same content.
    assert plan([v("a"), v("b")], [v("a", size=2), v("b")], history=True) == [v("a"), v("b")]
    assert plan([v("a"), v("c")], [v("a"), v("b")], history=True) == [v("c")]


def test_without_history_only_a_changed_current_version_is_copied() -> None:
    assert plan([v("a"), v("b")], [], history=False) == [v("b")]
    assert plan([v("b")], [v("b")], history=False) == []
    assert plan([v("b")], [v("a")], history=False) == [v("b")]


def test_an_unversioned_target_never_loses_its_copy_to_a_delete_marker() -> None:
    assert plan([v("a"), MARK], [v("a")], history=False) == []
    assert plan([v("a"), MARK], [], history=False) == []


def test_prefixes_covered_by_another_are_listed_once() -> None:
    assert narrowest(["b/", "a/x/", "a/", "b/"]) == ["a/", "b/"]
    assert narrowest([]) == [""]
    assert narrowest(["a/", ""]) == [""]
