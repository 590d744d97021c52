"""The arbiter's stores: a folder of case folders, SQLite and PostgreSQL.

The same disputes reach the same verdicts on every store; concurrent claims
on one commitment each count every other (threads, and processes on
SQLite); a process killed inside a transition leaves the case at its last
complete stage; a folder migrates into a database and reads back byte for
byte; damaged rows are refused with a typed error naming the case.

The PostgreSQL runs use the server of :mod:`tests.postgres` and are skipped
when none can be started.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, create_engine, event, text

from secmark.cli.main import main
from secmark.errors import EncodingError, ProtocolError
from secmark.messages import create_identity
from secmark.messages.challenge import open_challenge
from secmark.protocol.arbiter import Arbiter
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.database_store import DatabaseStore, migrate_folder
from secmark.protocol.owner import answer_challenge
from secmark.protocol.store import ArbiterStore, FolderStore
from secmark.timestamp import TimestampAuthority, TrustStore
from tests.conftest import fixed_keys
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 (the fixture)
from tests.protocol.conftest import POLICY, Committed, World, memorising_suspect

_ROOT = Path(__file__).resolve().parents[2]


def _database_url(kind: str, request: pytest.FixtureRequest, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'arbiter.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty arbiter database, of each backend in turn."""
    return _database_url(request.param, request, tmp_path)


@pytest.fixture
def open_store(database_url: str) -> Iterator[Callable[[], DatabaseStore]]:
    """Opens the database (again: a handle of its own each time), closed at the end."""
    opened: list[DatabaseStore] = []

    def opener() -> DatabaseStore:
        opened.append(DatabaseStore.open(database_url))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


def _arbiter(world: World, store: ArbiterStore) -> Arbiter:
    return Arbiter(
        world.arbiter_keys,
        world.arbiter_identity,
        world.trust,
        world.folder / "arbiter",
        policy=POLICY,
        store=store,
    )


def _dispute(world: World, arbiter: Arbiter, owner: Committed, thief: Committed) -> list[Any]:
    """Three claims: the owner's on a copy of its model (upheld), the thief's
    on the same copy (its rival holds, its own claim does not), and the
    owner's again on an innocent model (a later challenge: fresh indices at
    half the level). What the verdicts and bundles say, in order."""
    stolen = memorising_suspect(owner)
    runs = [
        world.run_case(owner, stolen, arbiter=arbiter),
        world.run_case(thief, stolen, arbiter=arbiter),
        world.run_case(
            owner,
            memorising_suspect(reference="sha256:" + "ab" * 32),
            arbiter=arbiter,
            suspect="sha256:" + "ab" * 32,
        ),
    ]
    summary = []
    for run in runs:
        verdict = run.decision
        summary.append(
            (
                verdict.outcome,
                verdict.reason,
                verdict.prior_challenges,
                verdict.test.matches,
                verdict.test.trials,
                len(verdict.rivals),
                run.challenge_document.document.excluded,
                verify_bundle(run.bundle).outcome,
                arbiter.case(run.case.name).stage,
            )
        )
    return summary


def test_a_dispute_reaches_the_same_verdicts_on_every_store(
    world: World, open_store: Callable[[], DatabaseStore]
) -> None:
    owner = world.commit()
    world.register_release(owner, world.model_file("released"))
    thief = world.commit(world.thief)
    on_folder = _dispute(world, world.arbiter(), owner, thief)
    store = open_store()
    in_database = _dispute(world, _arbiter(world, store), owner, thief)
    assert in_database == on_folder
    assert [row[0] for row in on_folder] == ["upheld", "rejected", "rejected"]
    # The database holds the cases, the folder only what it held before.
    arbiter = _arbiter(world, open_store())
    assert len(arbiter.store.case_names()) == 3
    assert arbiter.case(arbiter.case_id(store.case_names()[0][:6])).stage == "decided"
    assert arbiter.challenges_issued(owner.digest) == 2
    unused = next(
        f"{n:04x}"
        for n in range(1 << 16)
        if not any(name.startswith(f"{n:04x}") for name in store.case_names())
    )
    with pytest.raises(ProtocolError, match="no case id starts with"):
        arbiter.case_id(unused)


def _claims(world: World, mark: Committed, count: int) -> list[bytes]:
    return [world.claim(mark, suspect=f"oip:http://s{n}.example/v2/models/m") for n in range(count)]


def _assert_counted(arbiter: Arbiter, mark: Committed, challenges: list[bytes]) -> None:
    """Each challenge counts every other: priors 0..n-1, levels halving."""
    documents = [open_challenge(data, arbiter.keys.public_keys).document for data in challenges]
    count = len(documents)
    assert sorted(d.prior_challenges for d in documents) == list(range(count))
    assert sorted(d.alpha for d in documents) == [POLICY.alpha / 2**j for j in range(count)][::-1]
    assert arbiter.challenges_issued(mark.digest) == count
    assert {arbiter.case(d.claim_id).stage for d in documents} == {"challenged"}


def test_fifty_claims_filed_and_challenged_in_threads_each_count_every_other(
    world: World, owner_mark: Committed, open_store: Callable[[], DatabaseStore]
) -> None:
    claims = _claims(world, owner_mark, 50)
    store = open_store()
    start = threading.Barrier(10)

    def file_and_challenge(batch: list[bytes]) -> list[bytes]:
        arbiter = _arbiter(world, store)
        start.wait()
        return [arbiter.challenge(arbiter.file_claim(claim)) for claim in batch]

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(file_and_challenge, [claims[n::10] for n in range(10)]))
    _assert_counted(
        _arbiter(world, open_store()),
        owner_mark,
        [challenge for batch in results for challenge in batch],
    )


# -- other processes ---------------------------------------------------------


def _child(url: str, folder: Path, roots: Path, mode: str, *names: str) -> None:
    """Run in a process of its own (``python -c``): ``claims``: file and
    challenge the claim files ``names`` in order; ``kill``: run step
    ``names[0]`` of case ``names[1]`` and die by SIGKILL just before the
    transaction that moves the case on commits."""
    keys = fixed_keys("arbiter")
    store = DatabaseStore.open(url)
    arbiter = Arbiter(
        keys,
        create_identity(keys, "arbiter"),
        TrustStore.from_pem_files([roots]),
        folder,
        policy=POLICY,
        store=store,
    )
    if mode == "claims":
        for name in names:
            arbiter.challenge(arbiter.file_claim(Path(name).read_bytes()))
        return
    step, claim_id = names
    moving: set[int] = set()

    def watch(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE SECMARK_ARBITER_CASES"):
            moving.add(id(conn))

    def die(conn: Connection) -> None:
        if id(conn) in moving:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(store._engine, "before_cursor_execute", watch)
    event.listen(store._engine, "commit", die)
    getattr(arbiter, step)(arbiter.case(claim_id))


def _spawn(world: World, url: str, mode: str, *names: str) -> subprocess.Popen[bytes]:
    roots = world.folder / "tsa-root.pem"
    roots.write_bytes(world.tsa.root_certificate.public_bytes(Encoding.PEM))
    code = "import sys; from tests.protocol.test_store import _child; _child(*sys.argv[1:])"
    folder = str(world.folder / "arbiter")
    return subprocess.Popen(
        [sys.executable, "-c", code, url, folder, str(roots), mode, *names],
        cwd=_ROOT,
        stderr=subprocess.PIPE,
    )


def test_fifty_claims_from_two_processes_on_sqlite_each_count_every_other(
    world: World, owner_mark: Committed, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'arbiter.db'}"
    DatabaseStore.open(url).close()  # made once, before the processes share it
    files = []
    for n, claim in enumerate(_claims(world, owner_mark, 50)):
        files.append(tmp_path / f"claim-{n}.json")
        files[-1].write_bytes(claim)
    children = [_spawn(world, url, "claims", *map(str, files[n::2])) for n in range(2)]
    for child in children:
        _, errors = child.communicate(timeout=120)
        assert child.returncode == 0, errors.decode()[-2000:]
    store = DatabaseStore.open(url)
    try:
        arbiter = _arbiter(world, store)
        challenges = [arbiter.case(name).read("challenge.json") for name in store.case_names()]
        _assert_counted(arbiter, owner_mark, challenges)
    finally:
        store.close()


def test_a_process_killed_inside_a_transition_leaves_the_last_complete_stage(
    world: World,
    owner_mark: Committed,
    database_url: str,
    open_store: Callable[[], DatabaseStore],
) -> None:
    arbiter = _arbiter(world, open_store())
    case = arbiter.file_claim(world.claim(owner_mark))

    killed = _spawn(world, database_url, "kill", "challenge", case.name)
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    # The challenge, its registry row and its stage were one transaction.
    case = arbiter.case(case.name)
    assert case.stage == "claimed"
    assert not case.exists("challenge.json")
    assert arbiter.challenges_issued(owner_mark.digest) == 0

    challenge = arbiter.challenge(case)
    arbiter.receive_reveal(
        case, answer_challenge(owner_mark.keys, owner_mark.signed, challenge, arbiter.identity)
    )
    arbiter.query(case, memorising_suspect(owner_mark))

    killed = _spawn(world, database_url, "kill", "decide", case.name)
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    case = arbiter.case(case.name)
    assert case.stage == "queried" and "outcome" not in case.record
    arbiter.decide(case)
    assert verify_bundle(arbiter.case(case.name).read("bundle.json")).outcome == "upheld"


# -- migration -----------------------------------------------------------------


def test_a_folder_migrates_into_a_database_and_reads_back_the_same(
    world: World, database_url: str, open_store: Callable[[], DatabaseStore]
) -> None:
    owner = world.commit()
    thief = world.commit(world.thief)
    folder_arbiter = world.arbiter()
    _dispute(world, folder_arbiter, owner, thief)
    # A case left half-filed by a crash (no state) is no case: it stays behind.
    (folder_arbiter.folder / "cases" / ("0" * 64)).mkdir()
    folder_store = FolderStore(folder_arbiter.folder)

    assert main(["arbiter", "migrate", str(folder_arbiter.folder), "--database", database_url]) == 0
    store = open_store()
    assert migrate_folder(folder_arbiter.folder, store) == (0, 3, 0)  # twice: nothing changes
    assert store.case_names() == folder_store.case_names()
    assert store.registry() == folder_store.registry()
    arbiter = _arbiter(world, store)
    for name in folder_store.case_names():
        before, after = folder_arbiter.case(name), arbiter.case(name)
        assert (after.stage, after.record) == (before.stage, before.record)
        for document in ("claim.json", "challenge.json", "transcript.json", "verdict.json"):
            assert after.read(document) == before.read(document)
        assert after.read("bundle.json") == before.read("bundle.json")
        assert verify_bundle(after.read("bundle.json")).outcome == before.record["outcome"]

    # The migrated registry goes on counting: the next challenge is the third.
    case = arbiter.file_claim(world.claim(owner, suspect="oip:http://next.example/v2/models/m"))
    document = open_challenge(arbiter.challenge(case), arbiter.keys.public_keys).document
    assert document.prior_challenges == 2

    # A database holding another state of a case is not the folder's to fill.
    name = folder_store.case_names()[0]
    with create_engine(database_url).begin() as conn:
        conn.execute(
            text("UPDATE secmark_arbiter_cases SET stage = 'queried' WHERE claim_id = :c"),
            {"c": name},
        )
    with pytest.raises(ProtocolError, match=f"another state of case {name}"):
        migrate_folder(folder_arbiter.folder, store)


# -- damage ------------------------------------------------------------------


def test_damaged_rows_are_refused_naming_the_case(
    world: World,
    owner_mark: Committed,
    database_url: str,
    open_store: Callable[[], DatabaseStore],
) -> None:
    arbiter = _arbiter(world, open_store())
    run = world.run_case(owner_mark, memorising_suspect(owner_mark), arbiter=arbiter)
    name = run.case.name
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE secmark_arbiter_documents SET data = :d WHERE digest = :h"),
                {"d": b"not the verdict", "h": hashlib.sha256(run.verdict or b"").hexdigest()},
            )
        with pytest.raises(EncodingError, match=f"document verdict.json of case {name}"):
            arbiter.case(name).read("verdict.json")

        with engine.begin() as conn:
            conn.execute(
                text("UPDATE secmark_arbiter_cases SET record = :r WHERE claim_id = :c"),
                {"r": b'{"claim_id": 1}', "c": name},
            )
        with pytest.raises(EncodingError, match=f"state of case {name}.*damaged"):
            arbiter.case(name)
        # One damaged case does not stop the others' steps: it is skipped and named.
        case = arbiter.file_claim(
            world.claim(owner_mark, suspect="oip:http://n.example/v2/models/m")
        )
        arbiter.challenge(case)
        assert name in arbiter.damaged_cases

        with engine.begin() as conn:
            conn.execute(text("UPDATE secmark_arbiter_registry SET challenge_id = 'forged'"))
        with pytest.raises(EncodingError, match="registry .* is damaged"):
            arbiter.challenges_issued(owner_mark.digest)
    finally:
        engine.dispose()


def test_the_arbiter_commands_work_on_the_database_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "arbiter", "--out-dir", str(tmp_path / "keys"), "--unencrypted"]) == 0
    TimestampAuthority.initialize(tmp_path / "tsa", passphrase=None, allow_unencrypted=True)
    folder, url = tmp_path / "arb", f"sqlite:///{tmp_path / 'arbiter.db'}"
    parties = ["--key", str(tmp_path / "keys/arbiter.key")]
    parties += ["--identity", str(tmp_path / "keys/arbiter.identity.json")]
    assert (
        main(["arbiter", "init", str(folder), *parties, "--trust", str(tmp_path / "tsa/root.pem")])
        == 0
    )
    assert main(["arbiter", "migrate", str(folder), "--database", url, "--json"]) == 0
    capsys.readouterr()
    status = ["arbiter", "status", str(folder), "--case", "0000", "--database", url]
    assert main(status) == ProtocolError.exit_code
    assert (
        "no case id starts with 0000 in the arbiter database sqlite:///" in capsys.readouterr().err
    )
