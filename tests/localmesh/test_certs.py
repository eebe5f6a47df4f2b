from __future__ import annotations

import datetime as dt

from cryptography import x509

import localmesh as lm


def test_generated_certificates_carry_the_requested_validity(tmp_path) -> None:
    expired = lm.expired_cert(days_ago=2)
    soon = lm.expiring_cert(days=3)
    assert -2.1 < expired.days_left() < -1.9
    assert 2.9 < soon.days_left() < 3.01
    cert_file, key_file = soon.write(tmp_path)
    parsed = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert parsed.not_valid_after_utc == soon.not_after
    assert parsed.not_valid_before_utc < dt.datetime.now(dt.timezone.utc)
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_each_pair_writes_under_its_own_file_names(tmp_path) -> None:
    first, second = lm.generate_cert().write(tmp_path), lm.generate_cert().write(tmp_path)
    assert first != second
