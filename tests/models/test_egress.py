"""Egress policy: an arbiter service must not be made to send requests into
its own network by the URL a claimant names (server-side request forgery).

Against a real JSON API on 127.0.0.1: a policy that does not permit
loopback sends it nothing, whichever way the address is spelt or resolved;
a name is sent to the address that was checked, so a second resolution
cannot lead elsewhere, and its certificate is still checked against the
name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from secmark.errors import EncodingError, SuspectError
from secmark.models import JsonApiSuspect, TlsFiles
from secmark.models.egress import EgressPolicy, EgressRefused
from tests.models import json_server
from tests.models.certificates import certificate, write_pem
from tests.models.json_server import Answer, JsonApi, labels_of, make_app, serve_app

json_api = json_server.json_api

PUBLIC = EgressPolicy()
LOOPBACK = EgressPolicy.from_cidrs(["127.0.0.0/8", "::1/128"])
BATCH = np.eye(10, dtype=np.float32)[:3]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "::a9fe:a9fe",
        "::ffff:0:7f00:1",  # IPv4-translated
        "64:ff9b:1::7f00:1",  # local-use NAT64
        "fec0::1",  # site-local
        "2001:db8::1",
    ],
)
def test_addresses_inside_a_network_are_refused(address: str) -> None:
    assert not PUBLIC.permits(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_globally_routable_addresses_are_permitted(address: str) -> None:
    assert PUBLIC.permits(ipaddress.ip_address(address))


def test_listed_networks_are_permitted_in_every_spelling() -> None:
    for address in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"):
        assert LOOPBACK.permits(ipaddress.ip_address(address))
    for address in ("10.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", "fe80::1"):
        assert not LOOPBACK.permits(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("text", "message"),
    [("localhost", "no network"), ("127.0.0.1/8", "host bits"), ("10.0.0.0/33", "no network")],
)
def test_networks_are_written_in_cidr_notation(text: str, message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        EgressPolicy.from_cidrs([text])


def _suspect(url: str, egress: EgressPolicy | None, **options: Any) -> JsonApiSuspect:
    return JsonApiSuspect(
        url,
        request={"x": "{{inputs}}"},
        answers="/labels",
        output="labels",
        retries=0,
        egress=egress,
        **options,
    )


def _answer_labels(body: Any, _headers: dict[str, str]) -> Answer:
    return Answer(body={"labels": labels_of(body["x"])})


def test_a_loopback_suspect_is_sent_nothing_and_the_adapter_stops(json_api: JsonApi) -> None:
    url = json_api.route("/egress/refused", _answer_labels)
    with _suspect(url, PUBLIC) as model:
        for _ in range(2):  # the second is refused without resolving again
            with pytest.raises(SuspectError, match="not globally routable"):
                model.predict(BATCH)
        assert model.requests_sent == 0
    assert json_api.requests_to("/egress/refused") == []
    # The same server, where the arbiter permits loopback.
    with _suspect(url, LOOPBACK) as model:
        np.testing.assert_array_equal(model.predict(BATCH), [0, 1, 2])
    assert len(json_api.requests_to("/egress/refused")) == 1


def _resolving(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Resolve the test's names to the given addresses; the names asked, in order."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            asked.append(host)
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in names[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_name_that_resolves_inside_is_refused(
    json_api: JsonApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = httpx.URL(json_api.base_url).port
    json_api.route("/egress/name", _answer_labels)
    asked = _resolving(
        monkeypatch,
        {"inside.test": ["127.0.0.1"], "mixed.test": ["93.184.216.34", "127.0.0.1"]},
    )
    for name in ("inside.test", "mixed.test"):
        url = f"http://{name}:{port}/egress/name"
        refused = pytest.raises(EgressRefused, match=f"{name} resolves to an address that is")
        with _suspect(url, PUBLIC) as model, refused as error:
            model.predict(BATCH)
        assert "127.0.0.1" not in str(error.value)  # the claimant learns no inside address
    assert asked == ["inside.test", "mixed.test"]
    assert json_api.requests_to("/egress/name") == []


def test_a_name_is_sent_to_the_address_checked_with_its_own_host_header(
    json_api: JsonApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx never resolves "pinned.test" itself: only the policy's
    # resolution knows it, so the request reaching the server went to the
    # address that was checked.
    port = httpx.URL(json_api.base_url).port
    json_api.route("/egress/pinned", _answer_labels)
    asked = _resolving(monkeypatch, {"pinned.test": ["127.0.0.1"]})
    with _suspect(f"http://pinned.test:{port}/egress/pinned", LOOPBACK) as model:
        np.testing.assert_array_equal(model.predict(BATCH), [0, 1, 2])
        np.testing.assert_array_equal(model.predict(BATCH), [0, 1, 2])
    assert asked == ["pinned.test", "pinned.test"]  # checked for every request
    seen = json_api.requests_to("/egress/pinned")
    assert [request.headers["host"] for request in seen] == [f"pinned.test:{port}"] * 2


def test_a_name_that_does_not_resolve_is_a_connection_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unresolved(*_args: Any, **_kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolved)
    with _suspect("http://nowhere.test/predict", PUBLIC) as model:
        with pytest.raises(SuspectError, match="connection failed.*does not resolve"):
            model.predict(BATCH)
        assert model.requests_sent == 0


def test_a_policy_and_a_client_of_ones_own_are_refused_together() -> None:
    with httpx.Client() as client, pytest.raises(SuspectError, match="egress policy"):
        _suspect("http://127.0.0.1:9/predict", PUBLIC, client=client)


@dataclass(frozen=True)
class NamedTls:
    port: int
    ca_file: Path


@pytest.fixture(scope="module")
def named_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamedTls]:
    """An HTTPS JSON API on 127.0.0.1 whose certificate names suspect.test."""
    folder = tmp_path_factory.mktemp("egress-tls")
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate("egress test CA", ca_key, None, usage=None)
    server = certificate(
        "suspect.test",
        server_key,
        ("egress test CA", ca_key),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[x509.DNSName("suspect.test")],
    )
    api = JsonApi(base_url="")
    api.route("/predict", _answer_labels)
    with serve_app(
        make_app(api),
        ssl_certfile=str(write_pem(folder / "server.pem", server)),
        ssl_keyfile=str(write_pem(folder / "server.key", server_key)),
    ) as port:
        yield NamedTls(port, write_pem(folder / "ca.pem", ca))


def test_the_certificate_is_checked_against_the_name_not_the_address(
    named_tls: NamedTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    _resolving(monkeypatch, {"suspect.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    tls = TlsFiles(ca_file=named_tls.ca_file)
    url = f"https://suspect.test:{named_tls.port}/predict"
    with _suspect(url, LOOPBACK, tls=tls) as model:
        np.testing.assert_array_equal(model.predict(BATCH), [0, 1, 2])
    # The same address under a name the certificate does not hold.
    other = f"https://other.test:{named_tls.port}/predict"
    failed = pytest.raises(SuspectError, match="CERTIFICATE_VERIFY_FAILED")
    with _suspect(other, LOOPBACK, tls=tls) as model, failed:
        model.predict(BATCH)
