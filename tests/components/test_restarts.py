"""The namespace restarts provider: what it sends to the API server, and what it does when the server says no."""

from __future__ import annotations

import base64
import json

import dill
import pytest
from kubernetes.client.exceptions import ApiException

from components import _restarts
from components._restarts import (
    FIELD_MANAGER,
    RestartError,
    RestartsProvider,
    apply_body,
    conflicting_managers,
    converge,
)
from meshmodel.plan import PROXY_REVISION_ANNOTATION


def api_error(status: int, *, causes: list[dict] | None = None, message: str = "") -> ApiException:
    error = ApiException(status=status, reason="test")
    error.body = json.dumps({"message": message, "details": {"causes": causes or []}})
    return error


class FakeApps:
    """Records every apply; `fail` maps a workload name to the errors its next applies raise, in order."""

    def __init__(self, *, fail: dict[str, list[Exception]] | None = None, gone: set[str] = frozenset()) -> None:
        self.applied: list[tuple[dict, bool]] = []
        self.fail = fail or {}
        self.gone = set(gone)

    def apply(self, body: dict, *, force: bool = False) -> None:
        name = body["metadata"]["name"]
        if name in self.gone:
            raise api_error(422, message="spec.selector: Required value")
        errors = self.fail.get(name) or []
        if errors:
            raise errors.pop(0)
        self.applied.append((body, force))

    def exists(self, kind: str, name: str, namespace: str) -> bool:
        return name not in self.gone


def sent(api: FakeApps) -> dict[str, str | None]:
    return {body["metadata"]["name"]: ((body.get("spec") or {}).get("template", {}).get("metadata", {})
                                       .get("annotations", {}).get(PROXY_REVISION_ANNOTATION))
            for body, _ in api.applied}


def test_only_meshlifts_annotation_is_sent_and_taking_it_back_sends_nothing():
    assert apply_body("StatefulSet", "ledger", "shop", "1-31-0") == {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ledger", "namespace": "shop"},
        "spec": {"template": {"metadata": {"annotations": {PROXY_REVISION_ANNOTATION: "1-31-0"}}}},
    }
    assert apply_body("Deployment", "web", "shop", None) == {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
    }


def test_converge_applies_only_the_difference():
    api = FakeApps()
    old = {"Deployment/web": "1-30-3", "Deployment/cart": "1-31-0", "DaemonSet/agent": "1-31-0"}
    new = {"Deployment/web": "1-31-0", "DaemonSet/agent": "1-31-0", "StatefulSet/ledger": "1-31-0"}
    assert converge(api, "shop", old, new) == []
    assert sent(api) == {"web": "1-31-0", "ledger": "1-31-0", "cart": None}
    assert {body["kind"] for body, _ in api.applied} == {"Deployment", "StatefulSet"}
    assert not any(force for _, force in api.applied)


def test_a_workload_deleted_during_the_run_is_skipped_and_named():
    api = FakeApps(gone={"cart"})
    assert converge(api, "shop", {}, {"Deployment/web": "r", "Deployment/cart": "r"}) == ["Deployment/cart"]
    assert sent(api) == {"web": "r"}


def test_the_annotation_is_taken_from_meshlifts_earlier_patches_but_never_from_anyone_else():
    legacy = api_error(409, causes=[{"reason": "FieldManagerConflict", "message": 'conflict with "meshlift"',
                                     "field": ".spec.template.metadata.annotations.meshlift.io/proxy-revision"}])
    api = FakeApps(fail={"web": [legacy]})
    converge(api, "shop", {}, {"Deployment/web": "1-31-0"})
    assert [(body["metadata"]["name"], force) for body, force in api.applied] == [("web", True)]

    team = api_error(409, causes=[{"reason": "FieldManagerConflict", "message": 'conflict with "argocd-controller"',
                                   "field": ".spec.template.metadata.annotations.meshlift.io/proxy-revision"}],
                     message="Apply failed with 1 conflict: conflict with \"argocd-controller\"")
    api = FakeApps(fail={"web": [team]})
    with pytest.raises(RestartError, match=r"Deployment shop/web: Apply failed with 1 conflict.*argocd-controller"):
        converge(api, "shop", {}, {"Deployment/web": "1-31-0"})
    assert api.applied == []


def test_conflicting_managers_reads_the_status_causes():
    error = api_error(409, causes=[{"message": 'conflict with "a"'}, {"message": 'conflict with "b" using apps/v1'},
                                   {"message": "something else"}])
    assert conflicting_managers(error) == {"a", "b"}
    garbled = ApiException(status=409)
    garbled.body = "<html>"
    assert conflicting_managers(garbled) == set()


def test_transient_errors_are_retried_and_lasting_ones_are_not(monkeypatch):
    monkeypatch.setattr(_restarts, "RETRY_SECONDS", 5.0)
    api = FakeApps(fail={"web": [api_error(429), api_error(503), ConnectionResetError("reset")]})
    converge(api, "shop", {}, {"Deployment/web": "r"})
    assert sent(api) == {"web": "r"}

    api = FakeApps(fail={"web": [api_error(403, message="forbidden: cannot patch")]})
    with pytest.raises(RestartError, match="forbidden"):
        converge(api, "shop", {}, {"Deployment/web": "r"})


def test_the_provider_diffs_on_what_restarts_only():
    provider = RestartsProvider()
    old = {"namespace": "shop", "restarts": {"Deployment/web": "a"}, "cluster": {"kubeconfig": "/x"},
           "missing": []}
    assert not provider.diff("shop", old, {**old, "cluster": {"kubeconfig": "/y"}, "missing": None}).changes
    assert provider.diff("shop", old, {**old, "restarts": {}}).changes


def test_the_provider_is_stored_by_reference_so_the_stack_follows_the_installed_code():
    from pulumi.dynamic.dynamic import serialize_provider

    pickled = base64.b64decode(serialize_provider(RestartsProvider()))
    assert b"components._restarts" in pickled and len(pickled) < 2048
    assert type(dill.loads(pickled)) is RestartsProvider
    assert FIELD_MANAGER == "meshlift-restart"
