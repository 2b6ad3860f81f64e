"""TLS certificates for remote-tls: a fleet CA kept on the controller, a server certificate for each
task host, a client certificate for each Airflow host (``cryptography``; no openssl on any host).

Issuing is pure (keys and certificates in, PEM out); only :func:`load_or_create_ca` touches the disk:
the CA lives in ``$HOSTPREP_STATE_DIR/ca`` (0700 folder, 0600 files), or in a folder the operator names.
A certificate is only as good as its chain: :func:`verify_chain` checks the issuer's signature and the
validity window, so a certificate from another CA never passes.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hostprep.change.local_state import controller_dir, private_dir, write_private

__all__ = ["CA", "Issued", "CertError", "new_ca", "issue_server", "issue_client", "verify_chain", "days_left",
           "load_or_create_ca", "ca_dir", "DEFAULT_DAYS", "next_ca_dir", "switching", "load_next_ca", "promote_next_ca"]

DEFAULT_DAYS = 365
CA_DAYS = 3650
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")   # a host name or DNS name that goes into a certificate


class CertError(ValueError):
    """A certificate or key that is not what hostprep issued, or a name that cannot go into one."""


@dataclass(frozen=True)
class CA:
    """The fleet CA: its key and certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def __repr__(self) -> str:
        return f"<CA {self.cert.subject.rfc4514_string()} until {self.cert.not_valid_after_utc:%Y-%m-%d}>"


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, PEM, with the CA certificate that signed it."""

    cert_pem: str
    key_pem: str
    ca_pem: str

    def __repr__(self) -> str:
        cert = x509.load_pem_x509_certificate(self.cert_pem.encode())
        return f"<Issued {cert.subject.rfc4514_string()} until {cert.not_valid_after_utc:%Y-%m-%d}>"


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def _checked_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CertError(f"{what} {str(name)[:80]!r}: must be a host or DNS name (letters, digits and _ . -)")
    return name


def new_ca(fleet: str = "hostprep", *, now: datetime | None = None, days: int = CA_DAYS) -> CA:
    """A fresh CA (EC P-256): may sign certificates, nothing else; path length 0."""
    start = _now(now) - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{_checked_name(fleet, 'fleet')} docker CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hostprep")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return CA(key, cert)


def _leaf(ca: CA, cn: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName], now: datetime | None,
          days: int) -> Issued:
    if days < 1:
        raise CertError(f"certificate lifetime {days} days: must be at least 1")
    start = _now(now) - timedelta(minutes=5)
    end = min(start + timedelta(days=days), ca.cert.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem, ca.cert_pem)


def issue_server(ca: CA, name: str, *, addresses: tuple[str, ...] = (), now: datetime | None = None,
                 days: int = DEFAULT_DAYS) -> Issued:
    """The task host's dockerd certificate: its name (and each of ``addresses``: IPs or DNS names) in the SANs."""
    sans: list[x509.GeneralName] = [x509.DNSName(_checked_name(name, "task host name"))]
    for a in dict.fromkeys(addresses):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(a)))
        except ValueError:
            sans.append(x509.DNSName(_checked_name(a, "task host address")))
    return _leaf(ca, name, ExtendedKeyUsageOID.SERVER_AUTH, list(dict.fromkeys(sans)), now, days)


def issue_client(ca: CA, host: str, *, now: datetime | None = None, days: int = DEFAULT_DAYS) -> Issued:
    """An Airflow host's client certificate (CN = the inventory name, client auth only)."""
    return _leaf(ca, _checked_name(host, "Airflow host name"), ExtendedKeyUsageOID.CLIENT_AUTH, [], now, days)


def verify_chain(cert_pem: str, ca_pem: str, *, now: datetime | None = None) -> str | None:
    """Why ``cert_pem`` is not a valid certificate from the CA ``ca_pem`` right now, or None.

    Checks what a TLS peer checks first: issued by that CA (name and signature) and within its dates.
    ``ca_pem`` may be a bundle (several CA certificates): issued by any one of them is enough."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        cas = x509.load_pem_x509_certificates(ca_pem.encode())
    except ValueError as exc:
        return f"not a PEM certificate ({str(exc)[:80]})"
    named = [ca for ca in cas if ca.subject == cert.issuer]   # a bundle (old and new CA during a switch): any one
    if not named:
        return f"issued by {cert.issuer.rfc4514_string()[:120]}, not by {cas[0].subject.rfc4514_string()[:120]}"
    if not any(_signed_by(cert, ca) for ca in named):
        return "its signature is not the CA's"
    t = _now(now)
    if t < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}"
    if t > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def days_left(cert_pem: str, *, now: datetime | None = None) -> float:
    """Days until ``cert_pem`` expires (negative once it has); ``CertError`` if it is not a certificate."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise CertError(f"not a PEM certificate ({str(exc)[:80]})") from None
    return (cert.not_valid_after_utc - _now(now)).total_seconds() / 86400


def sans_of(cert_pem: str) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*ext.get_values_for_type(x509.DNSName), *(str(a) for a in ext.get_values_for_type(x509.IPAddress))]


# ------------------------------------------------------------------ the CA on the controller


def ca_dir(path: str | None = None) -> Path:
    """Where the fleet CA lives: the operator's folder, else ``$HOSTPREP_STATE_DIR/ca``."""
    return Path(path) if path else controller_dir() / "ca"


def load_or_create_ca(path: str | None = None, *, fleet: str = "hostprep") -> CA:
    """The fleet CA from ``ca_dir(path)``, made there on first use (key and certificate 0600).

    A folder or file that others can read, or a key that does not match its certificate, is refused."""
    folder = ca_dir(path)
    key_file, cert_file = folder / "ca-key.pem", folder / "ca.pem"
    if not key_file.exists() and not cert_file.exists():
        ca = new_ca(fleet)
        if path:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_0600(key_file, _key_pem(ca.key))
            _write_0600(cert_file, ca.cert_pem)
        else:
            private_dir(folder)
            write_private(key_file, _key_pem(ca.key))
            write_private(cert_file, ca.cert_pem)
        return ca
    for p in (folder, key_file, cert_file):
        if p.is_symlink() or not p.exists():
            raise CertError(f"{p}: missing or a symlink; the CA folder holds ca.pem and ca-key.pem, both hostprep's")
        if p.stat().st_mode & 0o077:
            raise CertError(f"{p}: readable by others (mode {p.stat().st_mode & 0o777:o}); the CA key must be 0600")
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError as exc:
        raise CertError(f"{folder}: not a PEM key and certificate ({str(exc)[:80]})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise CertError(f"{folder}: ca-key.pem does not match ca.pem")
    return CA(key, cert)


def next_ca_dir(path: str | None = None) -> Path:
    """Where the new fleet CA waits while a CA switch is under way (``certs.rotate --new-ca``)."""
    return ca_dir(path) / "next"


def switching(path: str | None = None) -> bool:
    """Whether a CA switch is under way (a new CA beside the current one)."""
    return (next_ca_dir(path) / "ca.pem").exists() or (next_ca_dir(path) / "ca-key.pem").exists()


def load_next_ca(path: str | None = None, *, create: bool = False) -> CA:
    """The new CA of a switch (made on first use when ``create``); ``CertError`` when there is none."""
    if not create and not switching(path):
        raise CertError(f"{next_ca_dir(path)}: no CA switch is under way (start one with certs.rotate --new-ca)")
    load_or_create_ca(None if path is None else path)   # the current CA first: a switch needs one to switch from
    return load_or_create_ca(str(next_ca_dir(path)))


def promote_next_ca(path: str | None = None, *, now: datetime | None = None) -> Path:
    """End a switch on the controller: the current CA moves to ``retired/<time>``, the new one takes its place."""
    folder, nxt = ca_dir(path), next_ca_dir(path)
    load_next_ca(path)   # refuses a missing or unsafe one before anything moves
    retired = folder / "retired" / _now(now).strftime("%Y%m%dT%H%M%S%fZ")
    retired.mkdir(mode=0o700, parents=True)
    for name in ("ca-key.pem", "ca.pem"):
        os.rename(folder / name, retired / name)
    for name in ("ca-key.pem", "ca.pem"):
        os.rename(nxt / name, folder / name)
    nxt.rmdir()
    return retired


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _write_0600(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
