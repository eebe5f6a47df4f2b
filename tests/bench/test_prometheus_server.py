"""Our Prometheus instance: how it is found or installed, configured, and always stopped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

import localmesh as lm
from bench import _prometheus
from bench._prometheus import PrometheusServer, PrometheusUnavailable, ScrapeTarget, ensure_prometheus, scrape_config


def test_an_installed_prometheus_is_used_without_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prometheus.shutil, "which", lambda name: "/usr/bin/prometheus")
    monkeypatch.setattr(_prometheus, "_run", lambda *a: pytest.fail("apt-get must not run"))
    assert ensure_prometheus() == Path("/usr/bin/prometheus")


def test_without_root_a_missing_prometheus_names_the_command_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prometheus.shutil, "which", lambda name: None)
    monkeypatch.setattr(_prometheus.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(_prometheus, "_run", lambda *a: pytest.fail("apt-get must not run"))
    with pytest.raises(PrometheusUnavailable, match=r"sudo apt-get install -y prometheus"):
        ensure_prometheus()


def test_as_root_a_failed_install_updates_the_lists_once_then_says_what_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, ...]] = []

    def run(argv, env):  # type: ignore[no-untyped-def]
        ran.append(tuple(argv))
        return subprocess.CompletedProcess(argv, 100, stdout="E: Unable to locate package prometheus\n")

    monkeypatch.setattr(_prometheus.shutil, "which", lambda name: None)
    monkeypatch.setattr(_prometheus.os, "geteuid", lambda: 0)
    monkeypatch.setattr(_prometheus, "_run", run)
    progress: list[str] = []
    with pytest.raises(PrometheusUnavailable, match="Unable to locate package"):
        ensure_prometheus(progress=progress.append)
    assert ran == [_prometheus.APT_INSTALL, ("apt-get", "update"), _prometheus.APT_INSTALL]
    assert "installing Prometheus: apt-get install -y prometheus" in progress[0]


def test_config_scrapes_envoys_stats_prometheus_with_their_pod_labels() -> None:
    config = scrape_config([ScrapeTarget(15000, {"kubernetes_pod_name": "web-1-a"})], scrape_interval_s=1)
    job = config["scrape_configs"][0]
    assert (job["metrics_path"], job["scrape_interval"]) == ("/stats/prometheus", "1s")
    assert job["static_configs"] == [{"targets": ["127.0.0.1:15000"], "labels": {"kubernetes_pod_name": "web-1-a"}}]


def test_our_prometheus_is_registered_for_cleanup_and_stop_removes_it() -> None:
    try:
        ensure_prometheus()
    except PrometheusUnavailable as exc:
        pytest.fail(str(exc))
    server = PrometheusServer([], scrape_interval_s=15).start()
    pid, workdir = server.pid, server.workdir
    assert pid is not None and workdir is not None and (workdir / "prometheus.yml").exists()
    assert psutil.Process(pid).cmdline()[1] == f"--config.file={workdir / 'prometheus.yml'}"
    # Registered like every Envoy: stopped by localmesh.stop_all(), at exit and on SIGTERM/SIGINT/SIGHUP
    # (stop_all() itself is not called here: it would stop other tests' Envoys too).
    assert pid in lm.live_pids()
    server.stop()
    assert pid not in lm.live_pids() and not psutil.pid_exists(pid)
    assert not workdir.exists()
    server.stop()  # idempotent
