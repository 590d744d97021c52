"""TLS settings of a remote suspect against a real HTTPS server on 127.0.0.1
that requires a client certificate (mutual TLS)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from secmark.errors import SuspectError
from secmark.models import JsonApiSuspect, TlsFiles
from tests.models import cli_world
from tests.models.certificates import certificate, write_pem
from tests.models.cli_world import TriggerSet, run, write_config
from tests.models.json_server import Answer, JsonApi, labels_of, make_app, serve_app

trigger_set = cli_world.trigger_set


@dataclass(frozen=True)
class MutualTls:
    url: str
    api: JsonApi
    ca_file: Path
    cert_file: Path
    key_file: Path
    folder: Path


@pytest.fixture(scope="module")
def mutual_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutualTls]:
    folder = tmp_path_factory.mktemp("tls")
    ca_key, client_ca_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate("test server CA", ca_key, None, usage=None)
    client_ca = certificate("test client CA", client_ca_key, None, usage=None)
    server = certificate(
        "127.0.0.1", server_key, ("test server CA", ca_key), usage=ExtendedKeyUsageOID.SERVER_AUTH
    )
    client = certificate(
        "arbiter",
        client_key,
        ("test client CA", client_ca_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    api = JsonApi(base_url="")
    api.route("/predict", lambda body, _h: Answer(body={"labels": labels_of(body["x"])}))
    with serve_app(
        make_app(api),
        ssl_certfile=str(write_pem(folder / "server.pem", server)),
        ssl_keyfile=str(write_pem(folder / "server.key", server_key)),
        ssl_ca_certs=str(write_pem(folder / "client-ca.pem", client_ca)),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as port:
        api.base_url = f"https://127.0.0.1:{port}"
        yield MutualTls(
            url=f"{api.base_url}/predict",
            api=api,
            ca_file=write_pem(folder / "ca.pem", ca),
            cert_file=write_pem(folder / "client.pem", client),
            key_file=write_pem(folder / "client.key", client_key),
            folder=folder,
        )


def suspect(url: str, tls: TlsFiles | None, **options: Any) -> JsonApiSuspect:
    return JsonApiSuspect(
        url, request={"x": "{{inputs}}"}, answers="/labels", output="labels", tls=tls, **options
    )


def test_the_ca_file_and_client_certificate_open_a_mutual_tls_endpoint(
    mutual_tls: MutualTls,
) -> None:
    tls = TlsFiles(mutual_tls.ca_file, mutual_tls.cert_file, mutual_tls.key_file)
    batch = np.eye(10, dtype=np.float32)[:4]
    with suspect(mutual_tls.url, tls) as model:
        np.testing.assert_array_equal(model.predict(batch), [0, 1, 2, 3])
        assert model.describe() == f"json:{mutual_tls.url}"


@pytest.mark.parametrize(
    ("which", "message"),
    [
        pytest.param("no-ca", r"CERTIFICATE_VERIFY_FAILED", id="server-unknown-to-the-system"),
        pytest.param("no-client-certificate", r"connection failed", id="no-client-certificate"),
    ],
)
def test_without_the_right_tls_files_nothing_is_answered(
    mutual_tls: MutualTls, which: str, message: str
) -> None:
    tls = None if which == "no-ca" else TlsFiles(ca_file=mutual_tls.ca_file)
    answered = len(mutual_tls.api.requests_to("/predict"))
    with (
        suspect(mutual_tls.url, tls, retries=1, backoff=0.01) as model,
        pytest.raises(SuspectError, match=message),
    ):
        model.predict(np.zeros((1, 10)))
    assert len(mutual_tls.api.requests_to("/predict")) == answered  # none reached the API


def test_an_exposed_or_encrypted_client_key_is_refused(
    mutual_tls: MutualTls, tmp_path: Path
) -> None:
    exposed = tmp_path / "exposed.key"
    exposed.write_bytes(mutual_tls.key_file.read_bytes())
    exposed.chmod(0o644)
    with pytest.raises(SuspectError, match=r"readable by others; chmod 600"):
        TlsFiles(mutual_tls.ca_file, mutual_tls.cert_file, exposed).context()
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(mutual_tls.key_file.read_bytes(), password=None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    encrypted.chmod(0o600)
    with pytest.raises(SuspectError, match=r"client key is encrypted"):
        TlsFiles(mutual_tls.ca_file, mutual_tls.cert_file, encrypted).context()
    with pytest.raises(SuspectError, match=r"holds no PEM certificate"):
        TlsFiles(ca_file=mutual_tls.key_file).context()


def test_tls_files_named_in_a_suspect_config(
    mutual_tls: MutualTls,
    trigger_set: TriggerSet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(
        mutual_tls.folder / "suspect.json",
        {
            "protocol": "json",
            "url": mutual_tls.url,
            "request": {"x": "{{inputs}}"},
            "answers": "/labels",
            "output": "labels",
            "tls": {"ca_file": "ca.pem", "cert_file": "client.pem", "key_file": "client.key"},
        },
    )
    result = run(capsys, *trigger_set.check("--suspect-config", str(config), "--json"))
    assert result.status == 0, result.err
    assert result.data["requests_sent"] == 3
    assert json.dumps(result.data)
