"""Registration checks an existing model-signing signature over the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from secmark.errors import EncodingError, KeyMaterialError, SignatureError
from secmark.provenance import model_folder_digest, verify_model_signature
from tests.provenance.conftest import sign_folder, write_key_pair, write_model_folder


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = write_model_folder(tmp_path / "tiny-model")
    private, public = write_key_pair(tmp_path, "signer")
    sign_folder(folder, private, folder / "model.sig")
    return folder, folder / "model.sig", public


def test_a_signature_over_the_folder_verifies_and_gives_its_digest(
    signed: tuple[Path, Path, Path],
) -> None:
    folder, bundle, public = signed
    digest = verify_model_signature(folder, bundle=bundle, public_key=public)
    assert digest == model_folder_digest(folder, ignore=[bundle])


def test_a_tampered_file_is_refused(signed: tuple[Path, Path, Path]) -> None:
    folder, bundle, public = signed
    (folder / "config.json").write_text('{"model_type": "other"}')
    with pytest.raises(SignatureError, match="config.json"):
        verify_model_signature(folder, bundle=bundle, public_key=public)


def test_a_signature_over_another_folder_is_refused(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, bundle, public = signed
    other = write_model_folder(tmp_path / "other-model", seed=1)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_model_signature(other, bundle=bundle, public_key=public)


def test_another_key_is_refused(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    folder, bundle, _ = signed
    _, stranger = write_key_pair(tmp_path, "stranger")
    with pytest.raises(SignatureError, match="Key mismatch"):
        verify_model_signature(folder, bundle=bundle, public_key=stranger)


def test_a_signature_leaving_out_a_model_file_is_refused(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "tiny-model")
    private, public = write_key_pair(tmp_path, "signer")
    sign_folder(folder, private, tmp_path / "model.sig", ignore=("tokenizer.json",))
    with pytest.raises(SignatureError, match="covers other files"):
        verify_model_signature(folder, bundle=tmp_path / "model.sig", public_key=public)


def test_a_malformed_bundle_or_key_is_refused(signed: tuple[Path, Path, Path]) -> None:
    folder, bundle, public = signed
    bundle.write_text('{"dsseEnvelope": {"payload": "e30="}, "dsseEnvelope": {}}')
    with pytest.raises(EncodingError, match="duplicate key"):
        verify_model_signature(folder, bundle=bundle, public_key=public)
    with pytest.raises(KeyMaterialError):
        verify_model_signature(folder, bundle=bundle, public_key=folder / "config.json")
