from __future__ import annotations

import pytest

import localmesh as lm


def test_stable_and_target_binaries_report_their_own_versions(stable, target) -> None:
    assert stable.version == "1.39.3"
    assert target.version == "1.40.0"
    assert stable.path != target.path


def test_missing_binary_error_tells_how_to_bootstrap(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MESHLIFT_STABLE_ENVOY", str(tmp_path / "no-envoy"))
    with pytest.raises(lm.EnvoyBinaryNotFound, match="make test"):
        lm.stable_envoy()


def test_free_ports_are_distinct_and_bindable() -> None:
    import socket

    ports = lm.free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
