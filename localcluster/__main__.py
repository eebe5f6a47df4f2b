"""`python -m localcluster`: the pinned toolchain and a local cluster, by hand.

    python -m localcluster toolchain           build what is missing (with progress), print the bin dirs
    python -m localcluster toolchain --path    print a PATH prefix for scripts (builds if needed)
    python -m localcluster charts              list the Istio charts served and where each comes from
    python -m localcluster up [NAME]           start a cluster (and the chart repository) until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from localcluster import charts, toolchain
from localcluster.cluster import ClusterError, LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    tools = commands.add_parser("toolchain", help="build the pinned tools that are missing; print where they are")
    tools.add_argument("--path", action="store_true", help="print one PATH prefix instead of a line per tool")
    commands.add_parser("charts", help="list the Istio charts the local repository serves")
    up = commands.add_parser("up", help="start a local cluster and the chart repository until interrupted")
    up.add_argument("name", nargs="?", default="meshlift")
    args = parser.parse_args(argv)

    try:
        if args.command == "toolchain":
            built = toolchain.ensure()
            if args.path:
                print(os.pathsep.join(map(str, built.bin_dirs)))
            else:
                for directory in built.bin_dirs:
                    print(directory)
            return 0
        if args.command == "charts":
            with tempfile.TemporaryDirectory() as tmp, charts.serve(Path(tmp)) as repository:
                print("\n".join(repository.describe()))
            return 0
        return _up(args.name)
    except (toolchain.ToolchainError, ClusterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _up(name: str) -> int:
    built = toolchain.ensure()
    workdir = Path(tempfile.mkdtemp(prefix=f"meshlift-cluster-{name}-"))
    cluster = LocalCluster(name=name, index=0, workdir=workdir, toolchain=built)
    with charts.serve(workdir / "charts") as repository:
        try:
            cluster.start()
            print(f"kubeconfig:  {cluster.kubeconfig} (context {cluster.context})")
            print(f"charts:      {repository.url}")
            print("Ctrl-C stops the cluster.")
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
