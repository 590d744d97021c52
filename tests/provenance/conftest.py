"""A multi-file model folder as a Hugging Face repository holds one, and
model-signing's own signing with a locally generated key."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from safetensors.numpy import save_file

pytest.importorskip("model_signing")


def write_model_folder(folder: Path, *, seed: int = 0) -> Path:
    """Two safetensors shards, their index, config and tokenizer files, and
    git's files, which model-signing leaves out."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    shards = {
        "model-00001-of-00002.safetensors": {"embed.weight": rng.standard_normal((16, 8))},
        "model-00002-of-00002.safetensors": {"head.weight": rng.standard_normal((8, 4))},
    }
    for name, tensors in shards.items():
        save_file({key: value.astype(np.float32) for key, value in tensors.items()}, folder / name)
    index = {name: shard for shard, tensors in shards.items() for name in tensors}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))
    (folder / "config.json").write_text(json.dumps({"model_type": "tiny", "hidden_size": 8}))
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0, "b": 1}}}))
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    return folder


def write_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """An elliptic-curve key pair in PEM, as model-signing's ``key`` method takes."""
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def sign_folder(
    folder: Path, private_key: Path, signature: Path, *, ignore: tuple[str, ...] = ()
) -> None:
    """Sign as ``model_signing sign key`` does: the signature written inside
    the folder is left out of what it signs."""
    from model_signing import hashing, signing

    relative = [str(signature.relative_to(folder))] if signature.is_relative_to(folder) else []
    signing.Config().use_elliptic_key_signer(private_key=private_key).set_hashing_config(
        hashing.Config().set_ignored_paths(paths=[*relative, *ignore])
    ).sign(folder, signature)


def signed_subject(signature: Path) -> str:
    """The subject digest of the statement inside a model-signing bundle."""
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    digest: str = statement["subject"][0]["digest"]["sha256"]
    return digest
