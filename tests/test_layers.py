"""The packages keep their layers, and no module imports itself in a circle.

The rules are data (`ALLOWED`, `EXCEPTIONS`); docs/architecture.md draws the same
picture for readers. Every `import` in the source tree counts, wherever it stands
(module level, inside a function, under `TYPE_CHECKING`): an import deferred into a
function still ties the two modules together.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each of the project's packages (and the Pulumi program, `__main__`) -> the project
# packages it may import. Third-party libraries are not judged here, except Pulumi:
# see NO_PULUMI.
ALLOWED: dict[str, frozenset[str]] = {
    # The Pulumi program and the benchmarks sit on top and may use anything.
    "__main__": frozenset({"rollout", "components", "checks", "meshmodel", "localmesh", "localcluster"}),
    "bench": frozenset({"rollout", "components", "checks", "meshmodel", "localmesh", "localcluster"}),
    # The orchestrator drives the program, the gates and the local rehearsals.
    "rollout": frozenset({"components", "checks", "meshmodel", "localmesh", "localcluster"}),
    # Pulumi resources built from the model; they know nothing of gates or rollouts.
    "components": frozenset({"meshmodel"}),
    # Gates over Envoy admin interfaces, judged against the model, never the Pulumi side.
    "checks": frozenset({"meshmodel"}),
    # The mesh model: its config, validation and per-stage plan. Nothing of ours below it.
    "meshmodel": frozenset(),
    # Real local Envoys and Kubernetes, usable without any of the above.
    "localmesh": frozenset(),
    "localcluster": frozenset({"localmesh"}),
}

# (importing module, imported module) pairs allowed across the rules above, each with why.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # A pod's stand-in Envoy runs the revision that injected the pod; the checks' Kubernetes
    # adapter holds the one parser of the injector's status annotation (and no more than
    # kubernetes-client code), so the local cluster reads it there rather than keep a twin.
    ("localcluster.sidecars", "checks.kube"): "one parser of sidecar.istio.io/status",
}

# Packages that must import without the Pulumi SDK: the model is used by the checks and the CLI
# in processes where Pulumi is not wanted.
NO_PULUMI = frozenset({"meshmodel", "checks", "localmesh", "localcluster"})

PACKAGES = frozenset(ALLOWED) - {"__main__"}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name, e.g. rollout.cli
    imported: str  # dotted module (or package) name, resolved against the tree
    where: str  # path:line, for the failure message

    @property
    def importer_package(self) -> str:
        return self.importer.split(".")[0]

    @property
    def imported_package(self) -> str:
        return self.imported.split(".")[0]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path, packages: Iterable[str]) -> list[Path]:
    files = [root / "__main__.py"] if (root / "__main__.py").exists() else []
    for package in sorted(packages):
        files += sorted((root / package).rglob("*.py")) if (root / package).is_dir() else []
    return files


def imports_of(root: Path, path: Path, modules: set[str]) -> list[Import]:
    """Every import in `path`, resolved to the tree's modules when it names one of them."""
    importer = module_name(root, path)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod when there is one.
            names = [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
            targets = [name if name in modules else base or name for name in names]
        else:
            continue
        where = f"{path.relative_to(root)}:{node.lineno}"
        found += [Import(importer, target, where) for target in dict.fromkeys(targets)]
    return found


def all_imports(root: Path, packages: Iterable[str]) -> list[Import]:
    files = source_files(root, packages)
    modules = {module_name(root, path) for path in files}
    return [found for path in files for found in imports_of(root, path, modules)]


def forbidden(imports: Iterable[Import], allowed: Mapping[str, frozenset[str]],
              exceptions: Mapping[tuple[str, str], str]) -> list[str]:
    """`path:line: a imports b (a may import: ...)` for each import its package's rule forbids."""
    problems = []
    for found in imports:
        source, target = found.importer_package, found.imported_package
        if source not in allowed or target == source:
            continue
        if target in allowed and target not in allowed[source] and (found.importer, found.imported) not in exceptions:
            may = ", ".join(sorted(allowed[source])) or "none of the project's packages"
            problems.append(f"{found.where}: {found.importer} imports {found.imported} ({source} may import: {may})")
        if source in NO_PULUMI and (target == "pulumi" or target.startswith("pulumi_")):
            problems.append(f"{found.where}: {found.importer} imports {found.imported} ({source} runs without Pulumi)")
    return problems


def cycles(imports: Iterable[Import]) -> list[list[str]]:
    """Each import circle between the tree's modules, as the modules around it (smallest first)."""
    imports = list(imports)
    importers = {found.importer for found in imports}  # a module that imports nothing closes no circle
    graph: dict[str, set[str]] = {}
    for found in imports:
        if found.imported != found.importer and found.imported in importers:
            graph.setdefault(found.importer, set()).add(found.imported)
    # Tarjan's strongly connected components: every component of more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found_cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found_cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found_cycles)


# --------------------------------------------------------------------------- the tree as it is


def test_every_package_imports_only_what_its_layer_allows() -> None:
    problems = forbidden(all_imports(ROOT, PACKAGES), ALLOWED, EXCEPTIONS)
    assert not problems, "imports across the layers (see docs/architecture.md):\n" + "\n".join(problems)


def test_no_module_imports_itself_in_a_circle() -> None:
    circles = cycles(all_imports(ROOT, PACKAGES))
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_every_exception_still_names_a_real_import() -> None:
    present = {(found.importer, found.imported) for found in all_imports(ROOT, PACKAGES)}
    stale = [pair for pair in EXCEPTIONS if pair not in present]
    assert not stale, f"exceptions whose import is gone (remove them): {stale}"


def test_every_package_of_the_project_has_a_rule() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(PACKAGES), f"packages without a rule, or rules without a package: {packages ^ PACKAGES}"


# --------------------------------------------------------------------------- the checker itself


def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


_RULES = {"low": frozenset(), "high": frozenset({"low"})}


def test_a_forbidden_import_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "low/__init__.py": "",
        "low/model.py": "from __future__ import annotations\n\n\ndef f():\n    import high.engine\n",
        "high/__init__.py": "",
        "high/engine.py": "from low.model import f\n",
    })
    problems = forbidden(all_imports(root, _RULES), _RULES, {})
    assert problems == ["low/model.py:5: low.model imports high.engine (low may import: none of the project's packages)"]


def test_an_allowed_import_and_a_listed_exception_pass(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "low/__init__.py": "",
        "low/model.py": "from high import engine\n",
        "high/__init__.py": "",
        "high/engine.py": "from low.model import f\nfrom low import model\n",
    })
    assert forbidden(all_imports(root, _RULES), _RULES, {("low.model", "high.engine"): "why"}) == []


def test_pulumi_is_refused_where_the_model_must_run_without_it(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"meshmodel/__init__.py": "", "meshmodel/spec.py": "import pulumi.runtime\n"})
    assert forbidden(all_imports(root, ["meshmodel"]), {"meshmodel": frozenset()}, {}) == [
        "meshmodel/spec.py:1: meshmodel.spec imports pulumi.runtime (meshmodel runs without Pulumi)"]


def test_a_circle_through_relative_and_deferred_imports_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "low/__init__.py": "",
        "low/a.py": "from . import b\n",
        "low/b.py": "def later():\n    from low.c import x\n",
        "low/c.py": "from .a import y\n",
        "low/d.py": "from low import a\n",
    })
    assert cycles(all_imports(root, ["low"])) == [["low.a", "low.b", "low.c"]]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_the_rules_are_read_from_a_real_source_tree(package: str) -> None:
    # Guards the checks above against passing on an empty tree: each package has imports to judge.
    assert [f for f in all_imports(ROOT, [package]) if f.importer_package == package], package
