"""The namespace rules judged before an upgrade, on namespaces in the API server's own shape."""

from __future__ import annotations

import json
from typing import Any

from meshmodel.spec_check import load_spec
from rollout.namespace_checks import (
    ENROLL_MANAGER_PREFIX,
    MANAGED_BY,
    existing_namespace_problems,
    foreign_injection_label_problems,
    returned_injection_label_warnings,
    unlisted_namespace_notes,
)
from tests.rollout.doubles import mesh_config


def namespace(name: str, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
              managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
                         "annotations": annotations or {}, "managedFields": managed or []}}


def owns_label(manager: str, operation: str, label: str) -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {f"f:{label}": {}}}}}


def spec(**overrides: Any):
    return load_spec(mesh_config(**overrides))


def test_meshlifts_own_marks_are_the_ones_its_components_set():
    from components._helm import MANAGED_BY as COMPONENTS_MANAGED_BY
    from components.namespace_enrollment import field_manager

    assert dict([MANAGED_BY]) == COMPONENTS_MANAGED_BY
    assert field_manager("shop") == f"{ENROLL_MANAGER_PREFIX}shop"


def test_create_true_over_a_namespace_someone_else_made_is_refused_at_its_key():
    problems = existing_namespace_problems(spec(), [namespace("shop"), namespace("other")])
    assert [p.key for p in problems] == ["meshlift:namespaces[0].create"]
    assert "'shop' already exists and was not created by meshlift" in problems[0].reason
    assert "`create: false`" in problems[0].reason


def test_a_namespace_meshlift_created_or_one_listed_create_false_is_fine():
    created = namespace("shop", labels=dict([MANAGED_BY]))
    config = mesh_config()
    config["meshlift:namespaces"][1]["create"] = False
    assert existing_namespace_problems(load_spec(config), [created, namespace("pay")]) == []


def test_an_injection_label_a_gitops_tool_applies_is_refused_with_where_to_change_it():
    flux = namespace("shop", labels={"istio-injection": "enabled"},
                     managed=[owns_label("kustomize-controller", "Apply", "istio-injection")])
    problems = foreign_injection_label_problems(spec(), [flux])
    assert [p.key for p in problems] == ["meshlift:namespaces[0].name"]
    reason = problems[0].reason
    assert "'kustomize-controller' (server-side apply)" in reason
    assert "remove istio-injection and set istio.io/rev: stable" in reason and "(in Git)" in reason


def test_an_injection_label_from_a_client_side_kubectl_apply_is_refused():
    applied = json.dumps({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": "pay", "labels": {"istio-injection": "enabled"}}})
    argo = namespace("pay", labels={"istio-injection": "enabled"},
                     annotations={"kubectl.kubernetes.io/last-applied-configuration": applied},
                     managed=[owns_label("argocd-controller", "Update", "istio-injection")])
    problems = foreign_injection_label_problems(spec(), [argo])
    assert [p.key for p in problems] == ["meshlift:namespaces[1].name"]
    assert "`kubectl apply`" in problems[0].reason


def test_an_injection_label_set_by_hand_is_taken_over_as_before():
    by_hand = namespace("shop", labels={"istio-injection": "enabled"},
                        managed=[owns_label("kubectl-label", "Update", "istio-injection")])
    ours = namespace("pay", labels={"istio-injection": ""},
                     managed=[owns_label(f"{ENROLL_MANAGER_PREFIX}pay", "Apply", "istio-injection")])
    assert foreign_injection_label_problems(spec(), [by_hand, ours]) == []


def test_unlisting_says_a_created_namespace_stays_and_a_patched_one_leaves_the_mesh():
    created = namespace("old-shop", labels={**dict([MANAGED_BY]), "istio.io/rev": "stable"})
    patched = namespace("legacy", labels={"istio.io/rev": "stable"},
                        managed=[owns_label(f"{ENROLL_MANAGER_PREFIX}legacy", "Apply", "istio.io/rev")])
    untouched = namespace("elsewhere", labels={"istio.io/rev": "stable"})
    listed = namespace("shop", labels={**dict([MANAGED_BY]), "istio.io/rev": "stable"})
    notes = unlisted_namespace_notes(spec(), [created, patched, untouched, listed])
    assert len(notes) == 2, notes
    assert notes[0].startswith("namespace legacy is no longer listed: the next `pulumi up` removes the "
                               "istio.io/rev=stable label")
    assert "pods created there afterwards get no sidecar" in notes[0]
    assert notes[1].startswith("namespace old-shop is no longer listed: it is kept with everything in it")


def enrolled(name: str, *, labels: dict[str, str], managed: list[dict[str, Any]]) -> dict[str, Any]:
    """A namespace meshlift patched (its enrollment manager owns istio.io/rev), with labels as they are now."""
    return namespace(name, labels={"istio.io/rev": "stable", **labels},
                     managed=[owns_label(f"{ENROLL_MANAGER_PREFIX}{name}", "Apply", "istio.io/rev"), *managed])


def test_an_injection_label_put_back_after_enrollment_is_warned_about_with_who_set_it_and_the_fix():
    healed = enrolled("shop", labels={"istio-injection": "enabled"},
                      managed=[owns_label("argocd-controller", "Update", "istio-injection")])
    created = namespace("pay", labels={**dict([MANAGED_BY]), "istio.io/rev": "stable", "istio-injection": "enabled"},
                        managed=[owns_label("kubectl-label", "Update", "istio-injection")])
    (shop, pay) = returned_injection_label_warnings(spec(), [healed, created])
    assert shop.startswith("namespace shop: its istio-injection=enabled label is back since meshlift enrolled it, "
                           "set by 'argocd-controller' (Update). It overrides istio.io/rev=stable: new pods there "
                           "are injected by the default injector, or not at all"), shop
    assert shop.endswith("Remove it where it is declared (in Git, if a GitOps tool's self-heal put it back), then "
                         "`kubectl label namespace shop istio-injection-`"), shop
    assert "set by 'kubectl-label' (Update)" in pay


def test_no_warning_without_the_label_before_meshlift_enrolled_or_between_its_own_two_patches():
    clean = enrolled("shop", labels={}, managed=[])
    mid_enrollment = enrolled("pay", labels={"istio-injection": ""}, managed=[])  # meshlift's own empty value
    assert returned_injection_label_warnings(spec(), [clean, mid_enrollment]) == []
    never_enrolled = namespace("shop", labels={"istio-injection": "enabled"},
                               managed=[owns_label("kubectl-label", "Update", "istio-injection")])
    assert returned_injection_label_warnings(spec(), [never_enrolled]) == []


def test_a_declared_label_is_left_to_the_refusal_when_asked():
    flux = enrolled("shop", labels={"istio-injection": "enabled"},
                    managed=[owns_label("kustomize-controller", "Apply", "istio-injection")])
    assert "'kustomize-controller' (Apply)" in returned_injection_label_warnings(spec(), [flux])[0]
    assert returned_injection_label_warnings(spec(), [flux], skip_declared=True) == []
