"""Which package modules a workflow script runs: its ``hw5repro`` imports, followed transitively.

The rules list these modules as inputs (``code(...)`` in workflow/rules/common.smk), so editing a
module reruns exactly the steps whose scripts import it, directly or through another module.
Imports are read with :mod:`ast`, anywhere in a file (also inside functions): ``import hw5repro.x``,
``from hw5repro.x import y``, ``from hw5repro import x``, ``from .x import y``, ``from . import x``.
Importing any module runs the package's ``__init__.py``, so it counts too.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "hw5repro"
PACKAGE_DIR = Path(__file__).resolve().parent


def imported_modules(path: str | Path, package_dir: str | Path = PACKAGE_DIR) -> set[str]:
    """Names of the package modules that the file ``path`` imports itself (not transitively);
    ``"__init__"`` stands for the package."""
    stat = Path(path).stat()
    modules, names = _package_imports(
        str(path), stat.st_mtime_ns, stat.st_size, _sub_package(path, package_dir)
    )
    # `from hw5repro import x` / `from . import x`: x is a module or a name of __init__.py
    return set(modules) | {name for name in names if (Path(package_dir) / f"{name}.py").is_file()}


def _sub_package(path: str | Path, package_dir: str | Path) -> tuple[str, ...]:
    """The sub-package (parts below the package) that holds ``path``; () for the package itself
    and for a file outside it (a script, whose relative imports mean nothing here)."""
    try:
        return Path(path).resolve().parent.relative_to(Path(package_dir).resolve()).parts
    except ValueError:
        return ()


def _with_parents(parts: list[str]) -> set[str]:
    """``["a", "b"]`` -> ``{"a", "a.b"}``: a module and the sub-packages whose ``__init__`` it
    runs (``a`` stands for ``a.py`` or ``a/__init__.py``)."""
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def module_file(name: str, package_dir: str | Path = PACKAGE_DIR) -> Path:
    """The file of module ``name`` (dotted, below the package): a/b.py or a/b/__init__.py."""
    base = Path(package_dir).joinpath(*name.split("."))
    package = base / "__init__.py"
    return (
        package
        if package.is_file() and not base.with_suffix(".py").is_file()
        else (base.with_suffix(".py"))
    )


@functools.cache
def _package_imports(
    path: str, mtime_ns: int, size: int, here: tuple[str, ...] = ()
) -> tuple[frozenset, frozenset]:
    """The package modules that ``path`` imports by module name, and the names it imports from
    the package itself (modules or names of __init__.py), parsed once per version of the file:
    the Snakefile asks for every rule's script, and their imports share most modules."""
    tree = ast.parse(Path(path).read_text(), filename=path)
    modules: set[str] = set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    modules.add("__init__")
                    modules.update(_with_parents(parts[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: only inside the package (``here``: the file's sub-package)
                parts = [*here[: len(here) - node.level + 1]]
                parts += node.module.split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == PACKAGE:
                parts = node.module.split(".")[1:]
            else:
                continue
            modules.add("__init__")
            if parts:
                modules.update(_with_parents(parts))
            else:
                names.update(alias.name for alias in node.names)
    return frozenset(modules), frozenset(names)


def module_dependencies(path: str | Path, package_dir: str | Path = PACKAGE_DIR) -> list[Path]:
    """The package modules that ``path`` (a script or a package module) runs, transitively,
    sorted; ``path`` itself is included when it is a package module. Raises ValueError for an
    import of a package module that does not exist."""
    package_dir = Path(package_dir)
    path = Path(path)
    seen: set[str] = set()
    todo = [path]
    if path.parent.resolve() == package_dir.resolve():
        seen.update({path.stem, "__init__"})
    while todo:
        current = todo.pop()
        for name in sorted(imported_modules(current, package_dir) - seen):
            module = module_file(name, package_dir)
            if not module.is_file():
                raise ValueError(f"{current} imports {PACKAGE}.{name}, but {module} does not exist")
            seen.add(name)
            todo.append(module)
    return sorted(module_file(name, package_dir) for name in seen)
