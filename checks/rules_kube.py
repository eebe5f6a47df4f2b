"""Checks that need Kubernetes pod status rather than the admin interface."""

from __future__ import annotations

from .context import Context, Verdict
from .observe import Read
from .target import PodFacts


def app_started_after_proxy(ctx: Context) -> Verdict:
    """Application containers started only once the proxy was ready.

    Guaranteed by a native sidecar (istio-proxy as an init container with
    restartPolicy Always: the kubelet waits for its startup probe) or by
    holdApplicationUntilProxyStarts (istio-proxy first, with a `pilot-agent wait`
    postStart hook). Without either, an app that starts first makes calls that
    fail until Envoy is ready. Start times from pod status back this up.
    """
    pod: PodFacts | None = ctx.obs.reads.get(Read.POD)
    if pod is None:
        return Verdict.skip("not a Kubernetes pod")
    proxy = pod.proxy
    if proxy is None:
        return Verdict.fail(f"pod {pod.namespace}/{pod.name} has no istio-proxy container")
    if proxy.started_at is None:
        return Verdict.fail("istio-proxy has not started")
    early = [c.name for c in pod.apps if c.started_at is not None and c.started_at < proxy.started_at]
    observed = {
        "native_sidecar": proxy.native_sidecar,
        "hold_application": bool(proxy.waits_for_proxy or pod.hold_application),
        "proxy_started_at": proxy.started_at.isoformat(),
    }
    if early:
        return Verdict.fail(f"container(s) {', '.join(early)} started before istio-proxy", observed=observed)
    if proxy.native_sidecar:
        return Verdict.ok("native sidecar: apps start after the proxy's startup probe", observed=observed)
    if proxy.waits_for_proxy or pod.hold_application:
        return Verdict.ok("holdApplicationUntilProxyStarts: apps wait for the proxy", observed=observed)
    return Verdict.fail(
        "apps are not held until the proxy is ready (no native sidecar, no holdApplicationUntilProxyStarts)",
        observed=observed,
    )
