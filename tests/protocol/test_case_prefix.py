"""Naming a case by a unique prefix of its id (``Arbiter.case_id``, ``--case``)."""

from __future__ import annotations

import shutil

import pytest

from secmark.errors import EncodingError, ProtocolError
from secmark.protocol.arbiter import MIN_CASE_PREFIX
from secmark.protocol.case import STATE_FILE
from tests.protocol.conftest import Committed, World


def test_a_unique_prefix_names_the_case(world: World, owner_mark: Committed) -> None:
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(owner_mark))
    for prefix in (case.name, case.name[:MIN_CASE_PREFIX], case.name[:12].upper()):
        assert arbiter.case_id(prefix) == case.name
        assert arbiter.find_case(prefix).name == case.name


def test_an_ambiguous_prefix_is_refused_with_the_candidates(
    world: World, owner_mark: Committed
) -> None:
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(owner_mark))
    # A second case folder whose id shares the first eight digits.
    twin = case.name[:8] + ("0" if case.name[8] != "0" else "1") + case.name[9:]
    (arbiter.folder / "cases" / twin).mkdir()
    shutil.copy(case.folder / STATE_FILE, arbiter.folder / "cases" / twin / STATE_FILE)
    with pytest.raises(ProtocolError, match="2 case ids start with") as refused:
        arbiter.case_id(case.name[:8])
    assert case.name[:12] in str(refused.value) and twin[:12] in str(refused.value)
    assert arbiter.case_id(case.name[:9]) == case.name


def test_an_unknown_prefix_is_refused(world: World, owner_mark: Committed) -> None:
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(owner_mark))
    other = ("0" if case.name[0] != "0" else "1") * 6
    with pytest.raises(ProtocolError, match="no case id starts with"):
        arbiter.case_id(other)
    # A folder without a state file is no case.
    (arbiter.folder / "cases" / (other + "0" * 58)).mkdir()
    with pytest.raises(ProtocolError, match="no case id starts with"):
        arbiter.case_id(other)


@pytest.mark.parametrize(
    "prefix",
    ["", "abc", "../" + "a" * 8, "zzzz", "abcd/..", "a" * 65, " abcd", "abcd\n", "\uff41bcd"],
)
def test_a_malformed_prefix_is_refused_before_any_lookup(world: World, prefix: str) -> None:
    with pytest.raises(EncodingError, match="prefix of 4 to 64 hex digits"):
        world.arbiter().case_id(prefix)
