"""``secmark timestamp``: it verifies what it stores; --import and --export.

Every TSA here is a real server on 127.0.0.1 (the built-in one, or one that
answers through a wrapper that breaks its answers), stopped by each test.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import tsp

from secmark.cli.main import main
from secmark.crypto import IdentityKeys
from secmark.messages.commitment import create_commitment
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels
from secmark.timestamp import TimestampAuthority, TimestampServer, TrustStore
from secmark.timestamp.evidence import TimestampEvidence
from tests.conftest import flip_byte
from tests.timestamp.openssl_tsa import make_chain_tsa, run_openssl, token_for

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture
def document(tmp_path: Path, owner_keys: IdentityKeys) -> tuple[Path, str]:
    """A signed commitment on disk, and its id (what its tokens date)."""
    signed = create_commitment(
        owner_keys,
        family=NoiseFamily((1, 8, 8), "float32", 0.0, 1.0),
        labels=ClassLabels(10),
        size=16,
        model_label="m",
    )
    path = tmp_path / "commitment.json"
    path.write_bytes(signed.to_json())
    return path, signed.digest


def _timestamp(respond: Callable[[bytes], bytes], document: Path, out: Path, *options: str) -> int:
    with TimestampServer(respond, port=0) as server:
        return main(["timestamp", str(document), "--tsa", server.url, "--out", str(out), *options])


def test_with_trust_the_stored_token_is_verified(
    tmp_path: Path,
    authority: TimestampAuthority,
    document: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = str(authority.directory / "root.pem")
    out = tmp_path / "evidence.json"
    assert _timestamp(authority.respond, document[0], out, "--trust", root, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["verified_against_trust"] is True
    assert shown["checks"][0]["tsa"] == "CN=secmark timestamp authority"
    evidence = TimestampEvidence.from_json(out.read_bytes())
    trust = TrustStore.from_pem_files([root])
    assert evidence.check(trust).trusted_time is not None


def test_without_trust_it_says_so_plainly(
    tmp_path: Path,
    authority: TimestampAuthority,
    document: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "evidence.json"
    assert _timestamp(authority.respond, document[0], out) == 0
    printed = capsys.readouterr().out
    assert "NOT verified against trusted roots (no --trust)" in printed
    assert "intact, NOT anchored" in printed
    assert "its issuer is not embedded in the token" in printed
    assert out.exists()


def _flip_last_byte(respond: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def answer(request: bytes) -> bytes:
        granted = respond(request)
        return flip_byte(granted, len(granted) - 1)  # the last byte of the signature

    return answer


def _without_certificate(respond: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def answer(request: bytes) -> bytes:
        parsed = tsp.TimeStampReq.load(request).native
        parsed["cert_req"] = False
        return respond(tsp.TimeStampReq(parsed).dump())

    return answer


@pytest.mark.parametrize(
    ("breaking", "error"),
    [
        (_flip_last_byte, "signature does not verify"),
        (_without_certificate, "does not embed the certificate"),
    ],
    ids=["broken-signature", "no-certificate"],
)
@pytest.mark.parametrize("with_trust", [False, True], ids=["no-trust", "trust"])
def test_a_token_that_cannot_verify_is_not_stored(
    tmp_path: Path,
    authority: TimestampAuthority,
    document: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    breaking: Callable[[Callable[[bytes], bytes]], Callable[[bytes], bytes]],
    error: str,
    with_trust: bool,
) -> None:
    """Before: exit 0 and evidence no one could ever verify."""
    out = tmp_path / "evidence.json"
    options = ["--trust", str(authority.directory / "root.pem")] if with_trust else []
    assert _timestamp(breaking(authority.respond), document[0], out, *options) == 7
    printed = capsys.readouterr().err
    assert "nothing written" in printed and error in printed
    assert not out.exists()


def test_untrusted_tsa_is_refused_with_trust(
    tmp_path: Path,
    authority: TimestampAuthority,
    document: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    stranger = TimestampAuthority.initialize(
        tmp_path / "stranger", passphrase=None, allow_unencrypted=True
    )
    out = tmp_path / "evidence.json"
    root = str(authority.directory / "root.pem")
    assert _timestamp(stranger.respond, document[0], out, "--trust", root) == 7
    assert "does not chain to a trusted root" in capsys.readouterr().err
    assert not out.exists()


def test_options_that_do_not_go_together(
    tmp_path: Path, document: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "e.json")
    assert main(["timestamp", str(document[0]), "--out", out]) == 1
    assert "--tsa URL or --import" in capsys.readouterr().err
    arguments = ["timestamp", str(document[0]), "--import", "x.tsr", "--export", "e.json"]
    assert main([*arguments, "--out", out]) == 1
    arguments = ["timestamp", str(document[0]), "--import", "x.tsr", "--intermediate", "i.pem"]
    assert main([*arguments, "--out", out]) == 1


@needs_openssl
@pytest.mark.parametrize("token_only", [False, True], ids=["response", "bare-token"])
def test_import_an_openssl_token_then_export_it_for_openssl(
    tmp_path: Path,
    document: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    token_only: bool,
) -> None:
    path, subject = document
    tsa = make_chain_tsa(tmp_path / "openssl", ess_alg="sha1")
    (tsa / "imported.tsr").write_bytes(
        token_for(tsa, bytes.fromhex(subject), token_only=token_only)
    )
    evidence = tmp_path / "evidence.json"
    root = str(tsa / "root.pem")
    arguments = ["timestamp", str(path), "--import", str(tsa / "imported.tsr")]
    assert main([*arguments, "--trust", root, "--out", str(evidence), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["checks"][0]["source"] == "imported from imported.tsr"
    assert shown["checks"][0]["tsa"] == "CN=openssl chain test tsa"
    stored = TimestampEvidence.from_json(evidence.read_bytes())
    assert stored.check(TrustStore.from_pem_files([root])).trusted_time is not None

    exported = tmp_path / "exported"
    arguments = ["timestamp", str(path), "--export", str(evidence), "--out", str(exported)]
    assert main(arguments) == 0
    assert "openssl ts -verify" in capsys.readouterr().out
    assert (exported / "1.tsr").read_bytes() == stored.tokens[0].token
    output = run_openssl(
        "ts", "-verify", "-data", exported / "message", "-in", exported / "1.tsr",
        "-CAfile", root, cwd=tmp_path,
    )  # fmt: skip
    assert b"Verification: OK" in output


@needs_openssl
def test_import_of_a_token_for_another_document_is_refused(
    tmp_path: Path, document: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    tsa = make_chain_tsa(tmp_path / "openssl")
    (tsa / "other.tsr").write_bytes(token_for(tsa, bytes(32)))
    out = tmp_path / "evidence.json"
    arguments = ["timestamp", str(document[0]), "--import", str(tsa / "other.tsr")]
    assert main([*arguments, "--out", str(out)]) == 7
    assert "for another message" in capsys.readouterr().err
    assert not out.exists()


def test_import_of_garbage_is_refused(
    tmp_path: Path, document: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.tsr"
    garbage.write_bytes(b"\x30\x03\x02\x01\x00")
    out = tmp_path / "evidence.json"
    arguments = ["timestamp", str(document[0]), "--import", str(garbage), "--out", str(out)]
    assert main(arguments) == 7
    assert "not a DER TimeStampResp" in capsys.readouterr().err


def test_export_of_evidence_for_another_document_is_refused(
    tmp_path: Path,
    authority: TimestampAuthority,
    document: tuple[Path, str],
    owner_keys: IdentityKeys,
    capsys: pytest.CaptureFixture[str],
) -> None:
    evidence = tmp_path / "evidence.json"
    assert _timestamp(authority.respond, document[0], evidence) == 0
    other = create_commitment(
        owner_keys,
        family=NoiseFamily((1, 8, 8), "float32", 0.0, 1.0),
        labels=ClassLabels(10),
        size=32,
        model_label="other",
    )
    other_path = tmp_path / "other.json"
    other_path.write_bytes(other.to_json())
    out = str(tmp_path / "exported")
    assert main(["timestamp", str(other_path), "--export", str(evidence), "--out", out]) == 1
    assert f"dates {document[1]}" in capsys.readouterr().err
