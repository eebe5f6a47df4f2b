"""Istio's own Helm charts, packaged from the istio.io/istio module and served on loopback.

The charts live in the module under `manifests/charts` (the data istioctl embeds).
In the source tree every chart says `version: 1.0.0` and the image tag is a
placeholder; Istio's release process stamps the release version into Chart.yaml
and the default image hub/tag into values.yaml. This module does the same stamping,
under the release versions `toolchain.toml` maps to module snapshots, then serves
a plain Helm repository (index.yaml + .tgz) over HTTP on 127.0.0.1 — what a
`helm repo add` or a Pulumi `helm.v3.Release` with `repositoryOpts.repo` reads.

Nothing else is changed in a chart: templates, values and schemas are Istio's.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from localcluster.toolchain import ChartRelease, load_pins, module_dir

# chart name in the repository -> its directory under manifests/charts
CHART_DIRS = {
    "base": "base",
    "istiod": "istio-control/istio-discovery",
    "gateway": "gateway",
}
RELEASE_HUB = "docker.io/istio"
# A fixed timestamp keeps archives (and so their digests) identical from build to build.
ARCHIVE_MTIME = 1_700_000_000

_TESTING_HUB = re.compile(r"^(\s+)hub: registry\.istio\.io/testing\s*$", re.M)
_LATEST_TAG = re.compile(r"^(\s+)tag: latest\s*$", re.M)


@dataclass(frozen=True)
class PackagedChart:
    name: str
    version: str
    archive: Path
    digest: str
    source: str  # module@version/path, for the README and the test report


def package_release(release: ChartRelease, out_dir: Path) -> list[PackagedChart]:
    """Package istio/base, istio/istiod and istio/gateway of one release into `out_dir`."""
    charts_root = module_dir(release.module, release.version) / "manifests" / "charts"
    packaged = []
    for name, relative in CHART_DIRS.items():
        archive = out_dir / f"{name}-{release.release}.tgz"
        data = _chart_archive(charts_root / relative, name, release.release)
        archive.write_bytes(data)
        packaged.append(
            PackagedChart(
                name=name,
                version=release.release,
                archive=archive,
                digest=hashlib.sha256(data).hexdigest(),
                source=f"{release.module}@{release.version}/manifests/charts/{relative}",
            )
        )
    return packaged


def stamp_chart_yaml(text: str, version: str) -> str:
    data = yaml.safe_load(text)
    data["version"] = version
    data["appVersion"] = version
    return yaml.safe_dump(data, sort_keys=False)


def stamp_values_yaml(text: str, version: str) -> str:
    """Set the default image hub and tag as a release does; keep every comment and other value."""
    text = _TESTING_HUB.sub(lambda m: f"{m.group(1)}hub: {RELEASE_HUB}", text)
    return _LATEST_TAG.sub(lambda m: f"{m.group(1)}tag: {version}", text)


def _chart_archive(chart_dir: Path, name: str, version: str) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=ARCHIVE_MTIME) as zipped:
        with tarfile.open(fileobj=zipped, mode="w") as tar:
            for path in sorted(chart_dir.rglob("*")):
                if path.is_dir():
                    continue
                relative = path.relative_to(chart_dir).as_posix()
                content = path.read_bytes()
                if relative == "Chart.yaml":
                    content = stamp_chart_yaml(content.decode(), version).encode()
                elif relative == "values.yaml":
                    content = stamp_values_yaml(content.decode(), version).encode()
                info = tarfile.TarInfo(f"{name}/{relative}")
                info.size = len(content)
                info.mtime = ARCHIVE_MTIME
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def index_yaml(charts: list[PackagedChart], base_url: str) -> str:
    entries: dict[str, list[dict]] = {}
    for chart in charts:
        with tarfile.open(chart.archive) as tar:
            member = tar.extractfile(f"{chart.name}/Chart.yaml")
            assert member is not None
            meta = yaml.safe_load(member.read())
        entries.setdefault(chart.name, []).append(
            {
                **meta,
                "urls": [f"{base_url}/{chart.archive.name}"],
                "digest": chart.digest,
                "created": "2026-01-01T00:00:00Z",
            }
        )
    return yaml.safe_dump(
        {"apiVersion": "v1", "entries": entries, "generated": "2026-01-01T00:00:00Z"}, sort_keys=False
    )


@dataclass(frozen=True)
class ChartRepository:
    url: str
    charts: tuple[PackagedChart, ...]

    def describe(self) -> list[str]:
        return [f"{c.name} {c.version} <- {c.source}" for c in self.charts]


@contextmanager
def serve(directory: Path, releases: list[str] | None = None) -> Iterator[ChartRepository]:
    """Package the pinned releases (or `releases`) into `directory` and serve them until the block ends."""
    _, pinned = load_pins()
    chosen = [pinned[r] for r in (releases or sorted(pinned))]
    directory.mkdir(parents=True, exist_ok=True)
    charts = [chart for release in chosen for chart in package_release(release, directory)]

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    (directory / "index.yaml").write_text(index_yaml(charts, url))
    thread = threading.Thread(target=server.serve_forever, name="chart-repository", daemon=True)
    thread.start()
    try:
        yield ChartRepository(url=url, charts=tuple(charts))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
