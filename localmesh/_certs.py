"""Self-signed certificates with chosen validity, for certificate-expiry checks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertPair:
    """A PEM certificate and its private key."""

    cert_pem: bytes
    key_pem: bytes
    common_name: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.timezone.utc)
        return (self.not_after - now).total_seconds() / 86400

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write cert and key under names unique to this pair; returns (cert, key) paths.

        New names per pair mean a swap is a config change Envoy cannot miss.
        """
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"{self.common_name}-{self.serial:x}"
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        cert.write_bytes(self.cert_pem)
        return cert, key


def generate_cert(
    *,
    common_name: str = "localmesh",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    valid_days: float = 90,
) -> CertPair:
    """A self-signed ECDSA P-256 certificate for `common_name` and 127.0.0.1.

    `not_after` defaults to now + `valid_days`; `not_before` to a day before now
    (or before `not_after`, for an already-expired certificate).
    """
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    not_after = not_after or now + dt.timedelta(days=valid_days)
    not_before = not_before or min(now, not_after) - dt.timedelta(days=1)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    serial = x509.random_serial_number()
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(common_name),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return CertPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
        common_name=common_name,
        serial=serial,
        not_before=not_before,
        not_after=not_after,
    )


def expired_cert(*, common_name: str = "localmesh", days_ago: float = 1) -> CertPair:
    """A certificate whose notAfter was `days_ago` days ago."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return generate_cert(common_name=common_name, not_after=now - dt.timedelta(days=days_ago))


def expiring_cert(*, common_name: str = "localmesh", days: float = 3) -> CertPair:
    """A certificate that expires in `days` days (fractions allowed)."""
    return generate_cert(common_name=common_name, valid_days=days)
