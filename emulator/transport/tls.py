"""TLS for ``wss://``: a KMS-style PEM (certificate chain and key in one file), or self-signed."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class CertificateError(ValueError):
    """The PEM given for wss:// cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """An SSL context with where its certificate came from and its SHA-256 fingerprint."""

    context: ssl.SSLContext
    fingerprint: str
    origin: str


def load_tls(pem: Path | None, password: str | None, hostnames: list[str]) -> TlsMaterial:
    """Build the server context from ``pem``, or from a certificate generated now."""
    if pem is None:
        pem_bytes = self_signed_pem(hostnames)
        origin = "self-signed certificate generated at start"
        with tempfile.NamedTemporaryFile(suffix=".pem") as handle:
            handle.write(pem_bytes)
            handle.flush()
            context = _context(Path(handle.name), None)
    else:
        try:
            pem_bytes = pem.read_bytes()
        except OSError as exc:
            raise CertificateError(
                f"cannot read the wss certificate {pem}: {exc.strerror}; "
                "give a PEM file holding the certificate and its private key"
            ) from exc
        origin = str(pem)
        context = _context(pem, password)
    return TlsMaterial(context, fingerprint(pem_bytes), origin)


def _context(path: Path, password: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(path, password=password)
    except ssl.SSLError as exc:
        raise CertificateError(
            f"{path} is not a usable PEM with certificate and private key ({exc.reason}); "
            "concatenate the certificate chain and the key into one file, as KMS's "
            "defaultCertificate.pem, and set the key password if it has one"
        ) from exc
    return context


def fingerprint(pem_bytes: bytes) -> str:
    """SHA-256 fingerprint of the first certificate in a PEM, as ``AB:CD:...``."""
    cert = x509.load_pem_x509_certificate(pem_bytes)
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _general_name(host: str) -> x509.GeneralName:
    """An IP address SAN for an address (clients check ``wss://127.0.0.1`` against it), else a
    DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def self_signed_pem(hostnames: list[str]) -> bytes:
    """A fresh ECDSA P-256 certificate and key, valid for a year, as one PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kurento-emulator")])
    now = datetime.datetime.now(datetime.UTC)
    names = [_general_name(h) for h in hostnames]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key_pem
