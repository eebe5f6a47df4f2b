"""A local cluster does not outlive a program that a signal ends.

kwokctl starts the cluster's daemons (etcd, kube-apiserver, controller-manager,
scheduler, kwok) as processes of their own, not as children of the program: a
SIGTERM, which skips `finally` blocks, used to leave them running.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import psutil

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from localcluster import toolchain
    from localcluster.cluster import LocalCluster
    cluster = LocalCluster(name="sigterm", index=5, workdir=Path(sys.argv[1]), toolchain=toolchain.ensure())
    cluster.start()
    print(cluster.cluster_dir, flush=True)
    time.sleep(300)
""")


def processes_under(directory: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if any(directory in part for part in (p.info.get("cmdline") or []))]


def test_sigterm_stops_the_clusters_daemons(tmp_path, built_toolchain) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "kwok")], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    cluster_dir = child.stdout.readline().strip()
    assert cluster_dir and processes_under(cluster_dir), "the cluster's daemons run"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == -signal.SIGTERM
    assert processes_under(cluster_dir) == []
