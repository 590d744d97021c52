"""Client extracts: what an arbiter checks about one client's logged queries."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from secmark.crypto import IdentityKeys
from secmark.crypto.merkle import merkle_root
from secmark.encoding import canonical_json
from secmark.errors import EncodingError, ProofError, ProtocolError, SignatureError
from secmark.messages.checkpoint import LogCheckpoint, create_checkpoint, open_checkpoint
from secmark.messages.document import sign_document
from secmark.serving.entry import client_account, leaf_of
from secmark.serving.extract import ClientExtract, verify_consistency, verify_extract
from secmark.serving.log import QueryLog
from tests.conftest import fixed_keys, flip_byte
from tests.serving.conftest import OTHER_POLICY_ID, POLICY_ID, T0, make_entry

ALICE = client_account(POLICY_ID, "alice")
BOB = client_account(POLICY_ID, "bob")


@pytest.fixture
def log(tmp_path: Path, operator: IdentityKeys) -> QueryLog:
    """Alice: 4 marked entries (one input asked twice) and 3 unmarked;
    bob and carol: some of each. Checkpoint at the end."""
    query_log = QueryLog.open(f"sqlite:///{tmp_path / 'log.db'}", policy_id=POLICY_ID)
    entries = []
    for i in range(12):
        client = ("alice", "bob", "carol")[i % 3]
        entries.append(make_entry(client, i, marked=i % 2 == 0))
    # Alice asks input 0 again (marked again): one observation, not two.
    entries.append(replace(make_entry("alice", 0, marked=True), time=T0 + timedelta(seconds=5)))
    query_log.append(entries)
    query_log.checkpoint(operator)
    return query_log


def test_honest_extract_verifies(log: QueryLog, operator: IdentityKeys) -> None:
    extract = log.extract(ALICE, log.size(), decoys=True)
    parsed = ClientExtract.from_bytes(extract.to_bytes())
    assert parsed == extract
    verified = verify_extract(parsed, operator=operator.public_keys, policy_id=POLICY_ID)
    assert verified.client == ALICE
    assert verified.client_count == 3
    assert verified.checkpoint.document.size == 13
    # Alice's entries are 0, 3, 6, 9 and the repeat of 0; even ones marked.
    assert [e.input for e in verified.marked] == [b"input 0", b"input 6"]
    assert [e.input for e in verified.unmarked] == [b"input 3", b"input 9"]
    assert all(e.client == ALICE for e in verified.marked + verified.unmarked)


def test_marked_only_extract(log: QueryLog, operator: IdentityKeys) -> None:
    extract = log.extract(ALICE, log.size())
    verified = verify_extract(extract, operator=operator.public_keys, policy_id=POLICY_ID)
    assert len(verified.marked) == 2
    assert verified.unmarked == ()


def _tampered(extract: ClientExtract, **change: object) -> ClientExtract:
    return ClientExtract(**{**extract.__dict__, **change})  # type: ignore[arg-type]


def test_omitted_marked_entry_is_refused(log: QueryLog, operator: IdentityKeys) -> None:
    extract = log.extract(ALICE, log.size())
    marked = [e for e in extract.entries if json.loads(e)["marked"]]
    for dropped in range(len(marked)):
        bad = _tampered(extract, entries=tuple(marked[:dropped] + marked[dropped + 1 :]))
        with pytest.raises(ProofError, match="1 of the client's marked entries are missing"):
            verify_extract(bad, operator=operator.public_keys, policy_id=POLICY_ID)
    with pytest.raises(ProofError, match="3 of the client's marked entries are missing"):
        verify_extract(
            _tampered(extract, entries=()), operator=operator.public_keys, policy_id=POLICY_ID
        )


def test_tampered_entry_is_refused(log: QueryLog, operator: IdentityKeys) -> None:
    extract = log.extract(ALICE, log.size())
    fields = json.loads(extract.entries[0])
    fields["served_answer"] = (fields["served_answer"] + 1) % 10
    bad = _tampered(extract, entries=(canonical_json(fields), *extract.entries[1:]))
    with pytest.raises(ProofError, match="no leaf"):
        verify_extract(bad, operator=operator.public_keys, policy_id=POLICY_ID)


def test_duplicate_entry_is_refused(log: QueryLog, operator: IdentityKeys) -> None:
    extract = log.extract(ALICE, log.size())
    bad = _tampered(extract, entries=(*extract.entries, extract.entries[0]))
    with pytest.raises(EncodingError, match="twice"):
        verify_extract(bad, operator=operator.public_keys, policy_id=POLICY_ID)


def test_entry_of_another_client_is_refused(log: QueryLog, operator: IdentityKeys) -> None:
    alice = log.extract(ALICE, log.size())
    bob = log.extract(BOB, log.size())
    # Bob's entry slipped into Alice's extract: its leaf names Bob.
    bad = _tampered(alice, entries=(*alice.entries, bob.entries[0]))
    with pytest.raises(ProofError, match="another client"):
        verify_extract(bad, operator=operator.public_keys, policy_id=POLICY_ID)
    # Bob's extract relabelled as Alice's: Alice's marked entries are missing.
    with pytest.raises(ProofError):
        verify_extract(
            _tampered(bob, client=ALICE), operator=operator.public_keys, policy_id=POLICY_ID
        )


def test_leaf_disagreeing_with_entry_is_refused(operator: IdentityKeys, tmp_path: Path) -> None:
    # An operator that logs a marked entry under a leaf saying "unmarked"
    # (to keep it out of the extract): the entry, if shown, is refused...
    entry = make_entry("alice", 1, marked=True)
    leaf = json.loads(leaf_of(entry))
    leaf["marked"] = False
    leaves = (canonical_json(leaf),)
    signed = create_checkpoint(operator, policy_id=POLICY_ID, size=1, root=merkle_root(leaves))
    extract = ClientExtract(ALICE, signed.to_json(), leaves, (entry.to_bytes(),))
    with pytest.raises(ProofError, match="marked flag"):
        verify_extract(extract, operator=operator.public_keys, policy_id=POLICY_ID)


def test_wrong_root_or_leaf_count_is_refused(log: QueryLog, operator: IdentityKeys) -> None:
    extract = log.extract(ALICE, log.size())
    keys = operator.public_keys
    with pytest.raises(ProofError, match="leaves"):
        verify_extract(
            _tampered(extract, leaves=extract.leaves[:-1]), operator=keys, policy_id=POLICY_ID
        )
    changed = (flip_byte(extract.leaves[0], 10, 1), *extract.leaves[1:])
    with pytest.raises(ProofError, match="root"):
        verify_extract(_tampered(extract, leaves=changed), operator=keys, policy_id=POLICY_ID)
    # A leaf omitted and another client's added in its place: the root differs.
    other = leaf_of(make_entry("mallory", 99, marked=True))
    swapped = (*extract.leaves[:-1], other)
    with pytest.raises(ProofError, match="root"):
        verify_extract(_tampered(extract, leaves=swapped), operator=keys, policy_id=POLICY_ID)


def test_forged_or_foreign_checkpoint_is_refused(log: QueryLog, operator: IdentityKeys) -> None:
    extract = log.extract(ALICE, log.size())
    forger = fixed_keys("forger")
    root = open_checkpoint(extract.checkpoint, operator.public_keys).document.root
    forged = create_checkpoint(forger, policy_id=POLICY_ID, size=13, root=root)
    with pytest.raises(SignatureError):
        verify_extract(
            _tampered(extract, checkpoint=forged.to_json()),
            operator=operator.public_keys,
            policy_id=POLICY_ID,
        )
    with pytest.raises(SignatureError):
        verify_extract(extract, operator=forger.public_keys, policy_id=POLICY_ID)
    with pytest.raises(ProtocolError):
        verify_extract(extract, operator=operator.public_keys, policy_id=OTHER_POLICY_ID)


def test_checkpoint_document(operator: IdentityKeys) -> None:
    signed = create_checkpoint(operator, policy_id=POLICY_ID, size=5, root=bytes(32))
    opened = open_checkpoint(signed.to_json(), operator.public_keys)
    assert opened.document == signed.document
    assert opened.digest == signed.digest
    payload = json.loads(signed.payload)
    assert payload["type"] == LogCheckpoint.TYPE == "secmark.log-checkpoint"
    assert payload["version"] == 1
    assert payload["operator"] == operator.key_id
    with pytest.raises(EncodingError):
        create_checkpoint(operator, policy_id=POLICY_ID, size=2**40 + 1, root=bytes(32))
    with pytest.raises(EncodingError):
        create_checkpoint(operator, policy_id=POLICY_ID, size=-1, root=bytes(32))
    with pytest.raises(EncodingError):
        create_checkpoint(operator, policy_id=POLICY_ID, size=1, root=bytes(31))
    # Signed by the operator, but naming someone else as operator.
    other = LogCheckpoint(POLICY_ID, fixed_keys("x").key_id, 1, bytes(32), signed.document.time)
    with pytest.raises(SignatureError):
        open_checkpoint(sign_document(other, operator).to_json(), operator.public_keys)


def test_fork_is_detected_by_consistency(tmp_path: Path, operator: IdentityKeys) -> None:
    log = QueryLog.open(f"sqlite:///{tmp_path / 'a.db'}", policy_id=POLICY_ID)
    log.append([make_entry("alice", i) for i in range(5)])
    old = log.checkpoint(operator)
    log.append([make_entry("bob", i) for i in range(6)])
    new = log.checkpoint(operator)
    verify_consistency(old, new, log.consistency_proof(5, 11))
    # The operator shows someone else a log in which entry 2 was rewritten.
    fork = QueryLog.open(f"sqlite:///{tmp_path / 'b.db'}", policy_id=POLICY_ID)
    fork.append([make_entry("alice", i, marked=i == 2) for i in range(5)])
    fork.append([make_entry("bob", i) for i in range(6)])
    forked = fork.checkpoint(operator)
    with pytest.raises(ProofError):
        verify_consistency(old, forked, fork.consistency_proof(5, 11))
    with pytest.raises(ProofError):
        verify_consistency(old, forked, log.consistency_proof(5, 11))
    with pytest.raises(ProofError):
        verify_consistency(new, forked, ())
    with pytest.raises(ProofError):
        verify_consistency(new, old, log.consistency_proof(5, 11))
    other = create_checkpoint(operator, policy_id=OTHER_POLICY_ID, size=11, root=new.document.root)
    with pytest.raises(ProtocolError):
        verify_consistency(old, other, log.consistency_proof(5, 11))
    log.close()
    fork.close()


def _extract_json(log: QueryLog) -> dict[str, object]:
    result: dict[str, object] = json.loads(log.extract(ALICE, log.size()).to_bytes())
    return result


@pytest.mark.parametrize(
    "change",
    [
        {"type": "secmark.other"},
        {"version": 2},
        {"version": True},
        {"client": "AB" * 32},
        {"leaves": "not a list"},
        {"entries": [1]},
        {"checkpoint": "***"},
        {"extra": 0},
    ],
    ids=lambda change: next(iter(change)) + "=" + str(next(iter(change.values())))[:12],
)
def test_strict_extract_decoding(log: QueryLog, change: dict[str, object]) -> None:
    with pytest.raises(EncodingError):
        ClientExtract.from_bytes(canonical_json({**_extract_json(log), **change}))


def test_extract_size_and_spelling(log: QueryLog) -> None:
    data = log.extract(ALICE, log.size()).to_bytes()
    with pytest.raises(EncodingError):
        ClientExtract.from_bytes(data, max_size=len(data) - 1)
    with pytest.raises(EncodingError):
        ClientExtract.from_bytes(data + b"\n")
    fields = _extract_json(log)
    del fields["leaves"]
    with pytest.raises(EncodingError):
        ClientExtract.from_bytes(canonical_json(fields))
