"""The package's import layering (read with hw5repro.pipeline.codedeps): no import cycle among
its modules, and no module imports a layer above its own."""

from __future__ import annotations

from helpers import REPO
from hw5repro.pipeline.codedeps import imported_modules

PACKAGE = REPO / "workflow" / "hw5repro"
#: Layers, low to high: a module may import its own layer and those below it.
LAYERS = {"plotting": 0, "pipeline": 0, "data": 1, "kernels": 2, "training": 3, "reporting": 4}
#: The homework's problems 1-5 stand apart: they may import only these.
PROBLEMS_MAY_IMPORT = {"plotting", "pipeline"}


def _graph() -> dict[str, set[str]]:
    """Module (dotted, relative to the package) -> the package modules it imports, without the
    packages' ``__init__`` files that every import runs (they import nothing: checked below)."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = imported_modules(path, PACKAGE)
    packages = {name for name in graph if (PACKAGE / name.replace(".", "/")).is_dir()}
    return {name: targets - packages - {name} for name, targets in graph.items()}


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_graph_holds_every_module_and_its_imports():
    graph = _graph()
    assert {"training.job", "training.loop", "kernels.triton_kernels", "problems.backprop"} <= set(
        graph
    )
    assert {"data.experiment", "training.loop", "training.settings"} <= graph["training.job"]
    assert "kernels.epilogues" in graph["training.model"]
    assert "kernels.triton_kernels" in graph["kernels.epilogues"]  # (inside a function)
    # the package and its sub-packages' __init__ files import nothing
    for package in ("", "data", "kernels", "pipeline", "problems", "reporting", "training"):
        assert graph[package] == set(), package


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """An import cycle of ``graph`` as its modules in order (the first repeated), or []."""
    state: dict[str, str] = {}  # "open" on the current path, "done" when all its imports are

    def visit(name: str, path: list[str]) -> list[str]:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return (
                    [*path[path.index(target) :], name, target]
                    if target in path
                    else [
                        name,
                        target,
                    ]
                )
            if target not in state and (found := visit(target, [*path, name])):
                return found
        state[name] = "done"
        return []

    for name in sorted(graph):
        if name not in state and (found := visit(name, [])):
            return found
    return []


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a layer above the importer's, and of problems outside their rule."""
    upward = []
    for name, targets in sorted(graph.items()):
        if not name:
            continue
        top = _top(name)
        for target in sorted(targets):
            if top == "problems":
                if _top(target) not in PROBLEMS_MAY_IMPORT | {"problems"}:
                    upward.append(f"{name} -> {target} (problems import only plotting, pipeline)")
            elif _top(target) == "problems":
                upward.append(f"{name} -> {target} (nothing imports problems)")
            elif LAYERS[_top(target)] > LAYERS[top]:
                upward.append(f"{name} -> {target}")
    return upward


def test_no_import_cycle():
    assert _cycle(_graph()) == []


def test_no_module_imports_a_layer_above_its_own():
    assert _upward(_graph()) == []


def test_a_cycle_or_an_upward_import_would_be_found(tmp_path, monkeypatch):
    """The checks find what they look for: a package with both faults."""
    pkg = tmp_path / "hw5repro"
    for name, text in {
        "__init__.py": "",
        "plotting.py": "",
        "data/__init__.py": "",
        "data/a.py": "from ..training import loop\n",  # upward
        "training/__init__.py": "",
        "training/loop.py": "from . import steps\n",
        "training/steps.py": "from .loop import x\n",  # a cycle
        "pipeline/__init__.py": "",
        "kernels/__init__.py": "",
        "reporting/__init__.py": "",
        "problems/__init__.py": "",
        "problems/p.py": "from ..data import a\n",  # problems import only plotting, pipeline
    }.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    real = imported_modules
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    monkeypatch.setitem(globals(), "imported_modules", lambda path, _: real(path, pkg))
    graph = _graph()
    assert graph["training.loop"] == {"training.steps"}
    assert _cycle(graph) == ["training.loop", "training.steps", "training.loop"]
    assert _upward(graph) == [
        "data.a -> training.loop",
        "problems.p -> data.a (problems import only plotting, pipeline)",
    ]
