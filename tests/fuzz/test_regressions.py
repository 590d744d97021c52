"""Regression tests for what fuzzing and review of hostile input found.

Each test is named after the attack it reproduces and fails without its fix.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from secmark.cli.derive import open_pool
from secmark.cli.main import main as cli_main
from secmark.cli.output import emit, printable
from secmark.cli.passphrase import read_passphrase
from secmark.cli.streams import read_file
from secmark.crypto import IdentityKeys
from secmark.crypto.keyfile import decode_key_file, encode_key_file, read_key_file
from secmark.crypto.passphrase_box import seal_box
from secmark.encoding import canonical_json
from secmark.errors import EncodingError, KeyMaterialError, SecmarkError
from secmark.messages import PAYLOAD_TYPE, Envelope
from secmark.messages.families import PoolFamily
from secmark.messages.identity import create_identity, open_identity
from secmark.messages.release import open_release
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.case import STATE_FILE, Case
from secmark.timestamp.authority import decode_tsa_key, encode_tsa_key
from secmark.triggers import read_trigger_set
from tests.conftest import fixed_keys
from tests.fuzz.corpus import CHEAP_KDF, PASSPHRASE, corpus
from tests.protocol.conftest import World, memorising_suspect


def _resigned(
    envelope: bytes, keys: IdentityKeys, change: Callable[[dict[str, Any]], None]
) -> bytes:
    payload = json.loads(Envelope.from_json(envelope).payload)
    change(payload)
    return Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), keys).to_json()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = payload
        for name in parents:
            node = node[name]
        node[last] = value

    return change


# -- "version": true where 1 is required -----------------------------------------


def test_version_true_is_not_version_1_in_a_self_signed_document() -> None:
    keys = fixed_keys("version")
    forged = _resigned(create_identity(keys, "v").to_json(), keys, _set("version", True))
    with pytest.raises(EncodingError, match="unsupported secmark.identity version True"):
        open_identity(forged)


def test_version_true_is_not_version_1_in_a_document_of_a_known_signer() -> None:
    forged = _resigned(corpus().release, corpus().owner, _set("version", True))
    with pytest.raises(EncodingError, match="version True"):
        open_release(forged, corpus().owner.public_keys)


def test_version_true_is_not_version_1_in_a_key_file() -> None:
    document = json.loads(encode_key_file(corpus().owner, None, unencrypted=True))
    document["version"] = True
    with pytest.raises(KeyMaterialError, match="version 1 file"):
        decode_key_file(canonical_json(document), None)


def test_version_true_is_not_version_1_in_a_tsa_key_file() -> None:
    document = json.loads(encode_tsa_key(ec.generate_private_key(ec.SECP256R1()), None))
    document["version"] = True
    with pytest.raises(KeyMaterialError, match="version 1 file"):
        decode_tsa_key(canonical_json(document), None, what="the TSA key")


# -- significance levels and p0 written with exponents ----------------------------


@pytest.mark.parametrize(
    "alpha", ["1e-5000", "1e-99999999", "1/" + "9" * 5000], ids=["e-5000", "e-99999999", "long"]
)
def test_verdict_alpha_with_a_huge_exponent_is_refused_fast(alpha: str) -> None:
    data = corpus()
    members = json.loads(data.bundle)
    members["verdict"] = _resigned(
        members["verdict"].encode(), data.arbiter, _set("test.alpha", alpha)
    ).decode()
    started = time.perf_counter()
    with pytest.raises(EncodingError, match="'alpha' must be a"):
        verify_bundle(canonical_json(members), data.trust, now=data.now)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("p0", ["1e-99999999", "0.1", "1/10 "])
def test_verdict_p0_not_written_as_a_fraction_is_refused(p0: str) -> None:
    data = corpus()
    members = json.loads(data.bundle)
    members["verdict"] = _resigned(
        members["verdict"].encode(), data.arbiter, _set("test.p0", p0)
    ).decode()
    with pytest.raises(EncodingError, match="'p0' must be a fraction"):
        verify_bundle(canonical_json(members), data.trust, now=data.now)


def test_challenge_alpha_with_a_huge_exponent_is_refused_fast() -> None:
    data = corpus()
    members = json.loads(data.bundle)
    members["challenge"] = _resigned(
        members["challenge"].encode(), data.arbiter, _set("alpha", "1e-99999999")
    ).decode()
    started = time.perf_counter()
    with pytest.raises(EncodingError, match="significance level"):
        verify_bundle(canonical_json(members), data.trust, now=data.now)
    assert time.perf_counter() - started < 2


# -- key files ------------------------------------------------------------------


def test_ciphertext_shorter_than_the_tag_is_a_key_error_not_a_value_error() -> None:
    document = json.loads(encode_key_file(corpus().owner, PASSPHRASE, kdf=CHEAP_KDF))
    document["ciphertext"] = "AAAA"
    with pytest.raises(KeyMaterialError, match="shorter than the 16-byte Poly1305 tag"):
        decode_key_file(canonical_json(document), PASSPHRASE)


def test_key_file_of_another_suite_is_refused() -> None:
    keys = corpus().owner
    header = {"key_id": keys.key_id, "suite": "secmark-v2", "type": "secmark.keyfile", "version": 1}
    secrets = canonical_json(json.loads(encode_key_file(keys, None, unencrypted=True))["secrets"])
    # Sealed with the other suite's header: the AEAD alone would accept it.
    data = seal_box(header, secrets, PASSPHRASE, CHEAP_KDF)
    with pytest.raises(KeyMaterialError, match="unsupported suite 'secmark-v2'"):
        decode_key_file(data, PASSPHRASE)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO nobody writes to; opened for writing afterwards so that a reader
    blocked on it (the bug) is released."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    yield path
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader waiting: nothing to release


def _returns_within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in a thread; fail if it blocks; return what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - returned to the test
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the read blocked on a FIFO"
    return raised[0] if raised else None


def test_key_file_path_to_a_fifo_is_refused_without_blocking(fifo: Path) -> None:
    error = _returns_within(5, lambda: read_key_file(fifo, PASSPHRASE))
    assert isinstance(error, KeyMaterialError)
    assert "a FIFO" in str(error)


def test_cli_document_path_to_a_fifo_is_refused_without_blocking(fifo: Path) -> None:
    error = _returns_within(5, lambda: read_file(fifo))
    assert isinstance(error, SecmarkError)
    assert "a FIFO" in str(error)


def test_identity_show_of_a_fifo_exits_with_an_error(fifo: Path) -> None:
    status: list[int] = []
    assert (
        _returns_within(5, lambda: status.append(cli_main(["identity", "show", str(fifo)]))) is None
    )
    assert status and status[0] != 0


def test_derive_commitment_that_is_a_fifo_exits_with_an_error(fifo: Path, tmp_path: Path) -> None:
    status: list[int] = []
    command = ["derive", str(fifo), "--key", str(tmp_path / "key"), "--out", str(tmp_path / "t")]
    assert _returns_within(5, lambda: status.append(cli_main(command))) is None
    assert status and status[0] != 0


def test_pool_that_is_a_fifo_is_refused_without_blocking(fifo: Path) -> None:
    pool_family = PoolFamily(pool_size=4, item_shape=(2,), item_dtype="uint8")
    commitment = SimpleNamespace(family=pool_family)
    error = _returns_within(5, lambda: open_pool(fifo, commitment))  # type: ignore[arg-type]
    assert isinstance(error, SecmarkError)
    assert "a FIFO" in str(error)


def test_passphrase_file_that_is_a_fifo_is_refused_without_blocking(fifo: Path) -> None:
    error = _returns_within(5, lambda: read_passphrase(str(fifo), confirm=False))
    assert isinstance(error, KeyMaterialError)


@pytest.mark.parametrize("path", ["/dev/zero", "/"])
def test_device_or_directory_is_not_read(path: str) -> None:
    with pytest.raises(SecmarkError, match="give the path of a regular file"):
        read_file(Path(path))


def test_non_utf8_passphrase_file_is_a_key_error(tmp_path: Path) -> None:
    path = tmp_path / "passphrase"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(KeyMaterialError, match="not UTF-8 text"):
        read_passphrase(str(path), confirm=False)


# -- an arbiter's damaged case folder --------------------------------------------


@pytest.fixture(scope="module")
def arbiter_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Any]:
    world = World(tmp_path_factory.mktemp("arbiter"))
    mark = world.commit()
    run = world.run_case(mark, memorising_suspect(mark), decide=False)
    return world, run


def _damaged_copy(run: Any, change: Callable[[dict[str, Any]], None]) -> Path:
    source = run.case.folder
    name = "f" * 64
    target = source.parent / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    state = json.loads((target / STATE_FILE).read_bytes())
    state["record"]["claim_id"] = name
    change(state)
    (target / STATE_FILE).write_bytes(canonical_json(state))
    return target


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s["record"].pop("holds"), id="missing-holds"),
        pytest.param(lambda s: s["record"].update(holds="yes"), id="holds-a-string"),
        pytest.param(lambda s: s["record"].update(suspect=7), id="suspect-a-number"),
        pytest.param(lambda s: s["record"].update(release={"x": 1}), id="release-garbled"),
        pytest.param(lambda s: s["record"]["test"].update(p0="1e-99999999"), id="test-p0"),
        pytest.param(lambda s: s.update(record=[]), id="record-a-list"),
        pytest.param(lambda s: s.update(stage=["queried"]), id="stage-a-list"),
    ],
)
def test_damaged_canonical_state_is_a_typed_error_naming_the_file(
    arbiter_world: tuple[World, Any], change: Callable[[dict[str, Any]], None]
) -> None:
    _, run = arbiter_world
    folder = _damaged_copy(run, change)
    try:
        with pytest.raises(EncodingError, match=str(folder / STATE_FILE)):
            Case.load(folder)
    finally:
        shutil.rmtree(folder)


def test_one_damaged_case_does_not_block_the_arbiters_decisions(
    arbiter_world: tuple[World, Any],
) -> None:
    world, run = arbiter_world
    folder = _damaged_copy(run, lambda s: s["record"].update(holds="yes"))
    try:
        arbiter = world.arbiter()
        assert arbiter.rivals(run.case) == []
        assert list(arbiter.damaged_cases) == [folder.name]
        assert str(folder / STATE_FILE) in arbiter.damaged_cases[folder.name]
    finally:
        shutil.rmtree(folder)


def test_damaged_registry_is_a_typed_error_naming_the_file(
    arbiter_world: tuple[World, Any],
) -> None:
    world, run = arbiter_world
    arbiter = world.arbiter()
    registry = arbiter.folder / "registry.json"
    original = registry.read_bytes()
    registry.write_bytes(
        canonical_json({run.case.record["commitment_id"]: ["not", "an", "object"]})
    )
    try:
        with pytest.raises(EncodingError, match="registry.json is damaged"):
            arbiter.challenges_issued(run.case.record["commitment_id"])
    finally:
        registry.write_bytes(original)


# -- control characters in what is printed ---------------------------------------


def test_identity_name_that_draws_another_key_id_is_refused() -> None:
    victim = fixed_keys("victim").key_id
    keys = fixed_keys("stranger")
    name = f"stranger\nkey id:         {victim}\x1b[8m"
    with pytest.raises(EncodingError, match="printable"):
        create_identity(keys, name)
    forged = _resigned(create_identity(keys, "stranger").to_json(), keys, _set("name", name))
    with pytest.raises(EncodingError, match="printable"):
        open_identity(forged)


def test_readable_output_escapes_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    emit(argparse.Namespace(json=False), ["reason: ok\n\x1b[2Jkey id: x\u202e"], {})
    out = capsys.readouterr().out
    assert out == "reason: ok\\x0a\\x1b[2Jkey id: x\\u202e\n"
    assert printable("plain text, é and 中文") == "plain text, é and 中文"


# -- trigger-set files ---------------------------------------------------------------


def test_trigger_set_array_with_an_unparsable_header_is_an_encoding_error() -> None:
    """numpy evaluates a .npy header with ast.literal_eval: a truncated one
    raised tokenize.TokenError (found by tests/fuzz, trigger-set target)."""
    root = corpus().trigger_set
    original = (root / "labels.npy").read_bytes()
    manifest = (root / "manifest.json").read_bytes()
    hostile = original[:20] + b"(((" + original[23:]
    value = json.loads(manifest)
    import hashlib

    value["files"]["labels.npy"] = hashlib.sha256(hostile).hexdigest()
    try:
        (root / "labels.npy").write_bytes(hostile)
        (root / "manifest.json").write_bytes(canonical_json(value))
        with pytest.raises(EncodingError, match="not a plain .npy"):
            read_trigger_set(root)
    finally:
        (root / "labels.npy").write_bytes(original)
        (root / "manifest.json").write_bytes(manifest)
    assert np.array_equal(read_trigger_set(root).labels, np.load(io.BytesIO(original)))


# -- memory: sizes and signatures before deep parsing ------------------------------


def _peak_ratio(call: Callable[[], Any], size: int) -> float:
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    kept = call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return (peak - base) / size


def test_envelope_payload_is_decoded_in_place_not_parsed_as_json() -> None:
    keys = fixed_keys("memory")
    data = Envelope.sign(PAYLOAD_TYPE, b"x" * 3_000_000, keys).to_json()
    # The decoded payload (3/4 of the envelope) and nothing else of its size:
    # parsing the envelope as JSON held a text copy and a re-encoded one too.
    assert _peak_ratio(lambda: Envelope.from_json(data), len(data)) < 0.8


def test_signature_is_checked_before_the_payload_is_parsed() -> None:
    keys, other = fixed_keys("memory"), fixed_keys("other")
    data = Envelope.sign(PAYLOAD_TYPE, b"[" * 100_000, other).to_json()
    from secmark.errors import SignatureError
    from secmark.messages.document import open_document
    from secmark.messages.release import Release

    with pytest.raises(SignatureError):
        open_document(data, Release, keys.public_keys)


def test_canonical_check_holds_no_second_copy_of_the_document() -> None:
    from secmark.encoding import parse_canonical_json

    data = canonical_json({"a": "x" * 4_000_000})
    # The text (freed after parsing) and the value: re-encoding the whole
    # document to compare it held two more copies.
    assert _peak_ratio(lambda: parse_canonical_json(data, max_size=1 << 30), len(data)) < 2.3


def test_signature_verification_reads_the_message_in_place() -> None:
    from secmark.crypto import verify_ed25519

    keys = fixed_keys("memory")
    message = b"m" * 4_000_000
    signature = keys.sign(message)
    ratio = _peak_ratio(
        lambda: verify_ed25519(keys.public_keys.signing_key, message, signature), len(message)
    )
    assert ratio < 0.2  # crypto_sign_open copied the message three times
