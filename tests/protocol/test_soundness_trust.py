"""Trust and time: a bundle is never trusted on its own word, and a token
from the future dates nothing (specs/dispute.md 8.8, specs/timestamp.md 5.3).

The attack: a thief makes his own TSA and his own arbiter, runs a "case" on
the stolen model with them and hands the judge the resulting bundle. Every
signature, proof and figure in it checks; only the judge's own TSA roots and
a pinned arbiter key tell it apart from a real one.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from secmark.cli.main import main
from secmark.cli.verification import EXIT_SELF_ASSERTED
from secmark.encoding import utc_now
from secmark.errors import EncodingError, SignatureError, TimestampError
from secmark.messages import create_identity
from secmark.protocol.bundle import TimeTrust, verify_bundle
from secmark.report import render_text
from secmark.timestamp import MAX_CLOCK_SKEW, verify_timestamp
from secmark.timestamp.evidence import TimestampEvidence, collect_evidence
from tests.conftest import fixed_keys
from tests.protocol.conftest import CaseRun, Committed, World, memorising_suspect


@pytest.fixture
def thiefs_case(world: World, owner_mark: Committed) -> CaseRun:
    """A case run entirely by the thief: his TSA, his arbiter, his commitment,
    "upheld" on the owner's stolen model. Do not modify: the bundle it leaves
    is the forged exhibit the tests below refuse."""
    rogue = World(world.folder / "thief's own world")
    rogue.arbiter_keys = fixed_keys("thief's arbiter")
    rogue.arbiter_identity = create_identity(rogue.arbiter_keys, "an impartial arbiter")
    thief_mark = rogue.commit(world.thief)
    run = rogue.run_case(thief_mark, memorising_suspect(owner_mark, thief_mark))
    assert run.decision.outcome == "upheld"
    return run


def _pem(world: World) -> Path:
    path = world.folder / "judge-roots.pem"
    path.write_bytes(world.tsa.root_certificate.public_bytes(Encoding.PEM))
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- a bundle whose TSA and arbiter the thief made ------------------------------


def test_a_thiefs_own_tsa_and_arbiter_verify_only_as_self_asserted(
    thiefs_case: CaseRun,
) -> None:
    report = verify_bundle(thiefs_case.bundle)
    assert report.outcome == "upheld"
    assert report.time_trust is TimeTrust.SELF_ASSERTED
    assert report.arbiter_pinned is False and not report.fully_trusted
    assert report.arbiter_key_id == fixed_keys("thief's arbiter").key_id
    assert any("SELF-ASSERTED" in line for line in render_text(report))
    assert any("NOT pinned" in line for line in render_text(report))

    # Pinning the arbiter the bundle names does not make its time trusted.
    pinned = verify_bundle(thiefs_case.bundle, arbiter_key_id=report.arbiter_key_id)
    assert pinned.arbiter_pinned and pinned.time_trust is TimeTrust.SELF_ASSERTED
    assert not pinned.fully_trusted


def test_a_thiefs_own_tsa_is_refused_with_the_judges_roots(
    world: World, thiefs_case: CaseRun
) -> None:
    with pytest.raises(TimestampError, match="does not chain to a trusted root"):
        verify_bundle(thiefs_case.bundle, world.trust)


def test_a_thiefs_own_arbiter_is_refused_when_the_judge_pins_the_real_one(
    world: World, thiefs_case: CaseRun
) -> None:
    real = world.arbiter_identity.document.key_id
    for trust in (None, world.trust):
        with pytest.raises(SignatureError, match="not by the pinned arbiter"):
            verify_bundle(thiefs_case.bundle, trust, arbiter_key_id=real)


def test_an_honest_bundle_is_fully_trusted_with_the_judges_roots_and_pin(
    world: World, owner_mark: Committed
) -> None:
    run = world.run_case(owner_mark, memorising_suspect(owner_mark))
    real = world.arbiter_identity.document.key_id
    report = verify_bundle(run.bundle, world.trust, arbiter_key_id=real)
    assert report.outcome == "upheld" and report.fully_trusted
    assert report.time_trust is TimeTrust.JUDGE_ROOTS
    assert not any("SELF-ASSERTED" in line or "NOT pinned" in line for line in render_text(report))
    unpinned = verify_bundle(run.bundle, world.trust)
    assert unpinned.time_trust is TimeTrust.JUDGE_ROOTS and not unpinned.arbiter_pinned
    with pytest.raises(SignatureError):
        verify_bundle(run.bundle, world.trust, arbiter_key_id=world.other_arbiter_keys.key_id)
    with pytest.raises(EncodingError, match="64 lower-case hex"):
        verify_bundle(run.bundle, world.trust, arbiter_key_id=real.upper())


def test_the_command_line_exits_self_asserted_for_the_thiefs_bundle(
    world: World, thiefs_case: CaseRun, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = world.folder / "thief.bundle.json"
    bundle.write_bytes(thiefs_case.bundle)

    status, out, _ = _cli(capsys, "verify-bundle", str(bundle), "--json")
    assert status == EXIT_SELF_ASSERTED != 0
    data = json.loads(out)
    assert data["time_trust"] == "self-asserted" and data["verified"] is False
    assert data["checks_passed"] is True and data["arbiter_pinned"] is False
    assert data["outcome"] == "upheld"

    status, out, _ = _cli(capsys, "verify-bundle", str(bundle))
    assert status == EXIT_SELF_ASSERTED
    assert "bundle NOT verified" in out and "SELF-ASSERTED" in out and "NOT pinned" in out
    assert "bundle verified" not in out

    status, _, err = _cli(capsys, "verify-bundle", str(bundle), "--trust", str(_pem(world)))
    assert status == TimestampError.exit_code and "does not chain" in err

    real = world.arbiter_identity.document.key_id
    status, _, err = _cli(capsys, "verify-bundle", str(bundle), "--arbiter", real)
    assert status == SignatureError.exit_code and "pinned arbiter" in err


def test_the_command_line_verifies_an_honest_bundle_with_roots_and_pin(
    world: World, owner_mark: Committed, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = world.folder / "owner.bundle.json"
    bundle.write_bytes(world.run_case(owner_mark, memorising_suspect(owner_mark)).bundle)
    real = world.arbiter_identity.document.key_id
    roots = str(_pem(world))

    status, out, _ = _cli(
        capsys, "verify-bundle", str(bundle), "--trust", roots, "--arbiter", real, "--json"
    )
    data = json.loads(out)
    assert status == 0
    assert (data["verified"], data["time_trust"], data["arbiter_pinned"]) == (
        True,
        "judge-roots",
        True,
    )
    assert data["arbiter"] == real

    status, out, _ = _cli(capsys, "verify-bundle", str(bundle), "--trust", roots)
    assert status == 0
    assert "bundle verified" in out and "NOT pinned" in out and "SELF-ASSERTED" not in out

    status, out, _ = _cli(capsys, "verify-bundle", str(bundle), "--json")
    assert status == EXIT_SELF_ASSERTED and json.loads(out)["time_trust"] == "self-asserted"


# -- tokens from the future ------------------------------------------------------


def test_a_future_token_is_refused_and_a_good_one_beside_it_still_dates(
    world: World, owner_mark: Committed
) -> None:
    past = world.tsa_clock.now
    tomorrow = world.tsa_clock.now = utc_now() + timedelta(days=1)
    future = TimestampEvidence.from_json(world.timestamp(owner_mark.digest, later_by=timedelta()))
    world.tsa_clock.now = past
    good = TimestampEvidence.from_json(owner_mark.evidence)
    both = TimestampEvidence(owner_mark.digest, (*future.tokens, *good.tokens))

    check = both.check(world.trust)
    assert check.tokens[0].verified is None
    assert "in the future" in (check.tokens[0].error or "")
    assert check.tokens[1].verified is not None
    assert check.require_trusted_time() == good.check(world.trust).require_trusted_time()

    with pytest.raises(TimestampError, match="in the future"):
        future.check(world.trust).require_trusted_time()
    # The verifier's clock is injectable: a day later the token dates its document.
    assert future.check(world.trust, now=tomorrow).require_trusted_time() == tomorrow


def test_the_clock_skew_is_stated_and_enforced_to_the_second(
    world: World, owner_mark: Committed
) -> None:
    assert MAX_CLOCK_SKEW == timedelta(minutes=5)
    evidence = TimestampEvidence.from_json(owner_mark.evidence)
    (token,) = evidence.tokens
    gen_time = evidence.check(world.trust).require_trusted_time()
    message = evidence.message
    at_limit = verify_timestamp(token.token, message, world.trust, now=gen_time - MAX_CLOCK_SKEW)
    assert at_limit.gen_time == gen_time
    with pytest.raises(TimestampError, match="in the future"):
        verify_timestamp(
            token.token,
            message,
            world.trust,
            now=gen_time - MAX_CLOCK_SKEW - timedelta(seconds=1),
        )
    with pytest.raises(TimestampError, match="naive"):
        verify_timestamp(token.token, message, world.trust, now=gen_time.replace(tzinfo=None))


def test_the_arbiter_refuses_a_commitment_dated_in_the_future(
    world: World,
) -> None:
    world.tsa_clock.now = utc_now()  # world.commit dates it an hour later
    future_mark = world.commit()
    with pytest.raises(TimestampError, match="in the future"):
        world.arbiter().file_claim(world.claim(future_mark))


def test_verify_bundle_checks_timestamps_against_its_own_clock(
    world: World, owner_mark: Committed
) -> None:
    run = world.run_case(owner_mark, memorising_suspect(owner_mark))
    committed = run.decision.commitment_time
    assert verify_bundle(run.bundle, world.trust, now=committed).outcome == "upheld"
    with pytest.raises(TimestampError, match="in the future"):
        verify_bundle(run.bundle, world.trust, now=committed - timedelta(hours=1))


def test_collected_evidence_from_a_tsa_with_a_fast_clock_is_refused_by_verifiers(
    world: World, owner_mark: Committed
) -> None:
    world.tsa_clock.now = utc_now() + MAX_CLOCK_SKEW + timedelta(minutes=1)
    fast = collect_evidence(owner_mark.digest, [world.tsa.respond])
    assert fast.check(world.trust).trusted_time is None
    world.tsa_clock.now = utc_now() + MAX_CLOCK_SKEW - timedelta(minutes=1)
    assert collect_evidence(owner_mark.digest, [world.tsa.respond]).check(world.trust).trusted_time
