"""Certificates with chosen validity, for certificate-expiry checks.

Self-signed server certificates (a gateway credential's shape), and what an
Istio sidecar serves: a mesh root (10 years by default) and a workload
certificate it signs, whose only SAN is a `spiffe://` URI and which lives 24 h
(pilot-agent's `SECRET_TTL`), backdated slightly as istiod's CA does.
"""

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
    issuer: CertPair | None = None,
    spiffe_id: str | None = None,
    ca: bool = False,
) -> CertPair:
    """An ECDSA P-256 certificate for `common_name` and 127.0.0.1, self-signed unless `issuer` signs it.

    `not_after` defaults to now + `valid_days`; `not_before` to a day before now
    (or before `not_after`, for an already-expired certificate). `spiffe_id`
    makes the only SAN that URI (a mesh workload certificate); `ca` marks a root.
    """
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    not_after = not_after or now + dt.timedelta(days=valid_days)
    not_before = not_before or min(now, not_after) - dt.timedelta(days=1)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    serial = x509.random_serial_number()
    import ipaddress

    if spiffe_id is not None:
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id)]
    else:
        sans = [x509.DNSName(common_name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    signer = key if issuer is None else serialization.load_pem_private_key(issuer.key_pem, password=None)
    issuer_name = name if issuer is None else x509.load_pem_x509_certificate(issuer.cert_pem).subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=spiffe_id is not None)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]
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


WORKLOAD_CERT_LIFETIME = dt.timedelta(hours=24)  # pilot-agent's SECRET_TTL default


def mesh_root(*, common_name: str = "cluster.local", valid_days: float = 3650) -> CertPair:
    """A mesh root CA (istiod's self-signed root lives 10 years)."""
    return generate_cert(common_name=common_name, valid_days=valid_days, ca=True)


def workload_cert(root: CertPair, *, spiffe_id: str = "spiffe://cluster.local/ns/default/sa/default",
                  lifetime: dt.timedelta = WORKLOAD_CERT_LIFETIME, age: dt.timedelta = dt.timedelta(0),
                  common_name: str = "workload") -> CertPair:
    """A workload certificate `root` signs, issued `age` ago and valid for `lifetime` from then.

    Backdated by 2 minutes like istiod's CA (clock skew), so a fresh one is
    0.1 % through its lifetime, not 0.
    """
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    issued = now - age
    return generate_cert(common_name=common_name, issuer=root, spiffe_id=spiffe_id,
                         not_before=issued - dt.timedelta(minutes=2), not_after=issued + lifetime)
