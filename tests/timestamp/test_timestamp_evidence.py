"""Timestamp evidence, and the offline flow keygen -> commit -> tsa -> timestamp -> show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.encoding import canonical_json
from secmark.errors import EncodingError, TimestampError
from secmark.timestamp import TimestampAuthority, TimestampServer, TrustStore
from secmark.timestamp.evidence import EvidenceToken, TimestampEvidence, collect_evidence
from tests.conftest import flip_byte

SUBJECT = "5e" * 32


def test_evidence_round_trip_and_trusted_time(
    authority: TimestampAuthority, trust: TrustStore
) -> None:
    evidence = collect_evidence(SUBJECT, [authority.respond, authority.respond])
    parsed = TimestampEvidence.from_json(evidence.to_json())
    check = parsed.check(trust)
    assert all(result.verified for result in check.tokens)
    assert check.trusted_time == min(r.verified.gen_time for r in check.tokens if r.verified)


def test_an_untrusted_token_is_reported_not_dropped(
    tmp_path: Path, authority: TimestampAuthority, trust: TrustStore
) -> None:
    stranger = TimestampAuthority.initialize(
        tmp_path / "stranger", passphrase=None, allow_unencrypted=True
    )
    evidence = collect_evidence(SUBJECT, [stranger.respond, authority.respond])
    check = evidence.check(trust)
    assert check.tokens[0].verified is None and check.tokens[0].error
    assert check.tokens[1].verified is not None
    assert check.trusted_time == check.tokens[1].verified.gen_time
    assert "REFUSED" in evidence.describe(check)[0]


def test_no_verified_token_means_no_trusted_time(
    tmp_path: Path, authority: TimestampAuthority
) -> None:
    evidence = collect_evidence(SUBJECT, [authority.respond])
    stranger = TimestampAuthority.initialize(
        tmp_path / "stranger", passphrase=None, allow_unencrypted=True
    )
    check = evidence.check(TrustStore(roots=(stranger.root_certificate,)))
    assert check.trusted_time is None
    with pytest.raises(TimestampError, match="no timestamp of"):
        check.require_trusted_time()


def test_token_for_another_subject_does_not_verify(
    authority: TimestampAuthority, trust: TrustStore
) -> None:
    token = collect_evidence("00" * 32, [authority.respond]).tokens[0]
    check = TimestampEvidence(SUBJECT, (token,)).check(trust)
    assert check.trusted_time is None


def test_tampered_token_is_reported(authority: TimestampAuthority, trust: TrustStore) -> None:
    token = collect_evidence(SUBJECT, [authority.respond]).tokens[0]
    tampered = EvidenceToken(token.source, flip_byte(token.token, len(token.token) - 10))
    assert TimestampEvidence(SUBJECT, (tampered,)).check(trust).trusted_time is None


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v.update(tokens=[]),
        lambda v: v.update(tokens=v["tokens"] * 9),
        lambda v: v.update(extra=1),
        lambda v: v.update(version=2),
        lambda v: v.update(subject="XY" * 32),
        lambda v: v["tokens"][0].update(token=v["tokens"][0]["token"] + "="),
    ],
)
def test_malformed_evidence_is_refused(authority: TimestampAuthority, change: object) -> None:
    value = json.loads(collect_evidence(SUBJECT, [authority.respond]).to_json())
    change(value)  # type: ignore[operator]
    with pytest.raises(EncodingError):
        TimestampEvidence.from_json(canonical_json(value))


def test_offline_flow_from_the_command_line(
    tmp_path: Path, authority: TimestampAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = str(tmp_path / "owner.key")
    assert main(["keygen", "owner", "--out-dir", str(tmp_path), "--unencrypted"]) == 0
    family = '{"name":"noise","shape":[1,8,8],"dtype":"float32","low":0,"high":1}'
    commitment = str(tmp_path / "commitment.json")
    assert (
        main(
            [
                "commit",
                "--key",
                keys,
                "--family",
                family,
                "--classes",
                "10",
                "--size",
                "256",
                "--out",
                commitment,
            ]
        )
        == 0
    )
    evidence = tmp_path / "evidence.json"
    root = str(tmp_path / "tsa" / "root.pem")
    with TimestampServer(authority.respond, port=0) as server:
        assert main(["timestamp", commitment, "--tsa", server.url, "--out", str(evidence)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "commitment",
                "show",
                commitment,
                "--evidence",
                str(evidence),
                "--trust",
                root,
                "--json",
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert shown["trusted_time"] is not None and shown["size"] == 256
    assert shown["timestamps"][0]["error"] is None


def test_tsa_down_leaves_no_evidence_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "owner", "--out-dir", str(tmp_path), "--unencrypted"]) == 0
    family = '{"name":"tokens","length":8,"vocab_size":100,"reserved":[0]}'
    commitment = str(tmp_path / "c.json")
    main(
        [
            "commit",
            "--key",
            str(tmp_path / "owner.key"),
            "--family",
            family,
            "--classes",
            "2",
            "--size",
            "8",
            "--out",
            commitment,
        ]
    )
    with TimestampServer(lambda request: request, port=0) as server:
        url = server.url  # the port is free again once the server stops
    status = main(["timestamp", commitment, "--tsa", url, "--out", str(tmp_path / "e.json")])
    assert status == 7
    assert "cannot connect" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()
