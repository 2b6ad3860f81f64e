"""The fleet CA and the certificates remote-tls hands out: dates, names, key usage, chains."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from hostprep.change import certs

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def ca() -> certs.CA:
    return certs.new_ca("lab", now=NOW)


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_a_server_certificate_names_the_task_host_and_its_address_and_serves_only(ca: certs.CA) -> None:
    issued = certs.issue_server(ca, "hp-h9-2", addresses=("10.0.0.2", "tasks.example.org"), now=NOW)
    cert = load(issued.cert_pem)
    assert certs.sans_of(issued.cert_pem) == ["hp-h9-2", "tasks.example.org", "10.0.0.2"]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign


def test_a_client_certificate_names_the_airflow_host_and_authenticates_clients_only(ca: certs.CA) -> None:
    cert = load(certs.issue_client(ca, "lab1", now=NOW).cert_pem)
    assert cert.subject.rfc4514_string() == "CN=lab1"
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])


def test_certificates_last_one_year_by_default_and_the_ca_may_only_sign(ca: certs.CA) -> None:
    issued = certs.issue_client(ca, "lab1", now=NOW)
    assert 364.9 < certs.days_left(issued.cert_pem, now=NOW) <= 365.0
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_a_certificate_from_the_fleet_ca_verifies_and_one_from_another_ca_does_not(ca: certs.CA) -> None:
    ours = certs.issue_client(ca, "lab1", now=NOW)
    theirs = certs.issue_client(certs.new_ca("lab", now=NOW), "lab1", now=NOW)   # same names, another key
    assert certs.verify_chain(ours.cert_pem, ca.cert_pem, now=NOW) is None
    assert certs.verify_chain(theirs.cert_pem, ca.cert_pem, now=NOW) == "its signature is not the CA's"


def test_an_expired_certificate_does_not_verify(ca: certs.CA) -> None:
    issued = certs.issue_client(ca, "lab1", now=NOW, days=30)
    later = NOW + timedelta(days=31)
    assert certs.verify_chain(issued.cert_pem, ca.cert_pem, now=later) == f"expired on {(NOW + timedelta(days=30)):%Y-%m-%d}"
    assert certs.days_left(issued.cert_pem, now=later) < 0


@pytest.mark.parametrize("name", ["", "a b", "lab1;rm -rf /", "../x", "-lab", "x" * 64])
def test_a_name_that_cannot_be_a_host_name_never_goes_into_a_certificate(ca: certs.CA, name: str) -> None:
    with pytest.raises(certs.CertError):
        certs.issue_client(ca, name, now=NOW)


def test_the_ca_is_made_once_under_the_state_dir_and_kept_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path / "state"))
    first = certs.load_or_create_ca()
    again = certs.load_or_create_ca()
    assert again.cert == first.cert
    folder = tmp_path / "state" / "ca"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {"ca.pem": 0o600, "ca-key.pem": 0o600}


def test_a_ca_key_others_can_read_is_refused(tmp_path: Path) -> None:
    certs.load_or_create_ca(str(tmp_path / "ca"))
    os.chmod(tmp_path / "ca" / "ca-key.pem", 0o644)
    with pytest.raises(certs.CertError, match="readable by others"):
        certs.load_or_create_ca(str(tmp_path / "ca"))


def test_a_ca_key_that_does_not_match_its_certificate_is_refused(tmp_path: Path) -> None:
    certs.load_or_create_ca(str(tmp_path / "a"))
    certs.load_or_create_ca(str(tmp_path / "b"))
    (tmp_path / "a" / "ca.pem").write_text((tmp_path / "b" / "ca.pem").read_text())
    with pytest.raises(certs.CertError, match="does not match"):
        certs.load_or_create_ca(str(tmp_path / "a"))
