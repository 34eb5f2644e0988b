"""Which package modules a workflow script runs (its ``hw5repro`` imports, transitively, with the
packages above them): rule inputs (``code(...)``), so editing a module reruns the steps using it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "hw5repro"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of module ``name`` (dotted, below the package; ``""``: the package), or None."""
    base = package_dir.joinpath(*name.split(".")) if name else package_dir
    if name and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _package_parts(path: Path, package_dir: Path) -> list[str] | None:
    """The package that contains ``path``, as parts below the top package; None outside it."""
    try:
        return list(path.resolve().parent.relative_to(package_dir.resolve()).parts)
    except ValueError:
        return None


@functools.cache
def _imports(path: str, mtime_ns: int, size: int) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """Every import of ``path`` as (level, module, names), parsed once per version of the file."""
    tree = ast.parse(Path(path).read_text(), filename=path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            found.append((node.level, node.module or "", names))
    return tuple(found)


def imported_modules(path: str | Path, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The package modules ``path`` imports directly (ValueError for one that does not exist)."""
    path, package_dir = Path(path), Path(package_dir)
    stat = path.stat()
    here = _package_parts(path, package_dir)
    targets: set[str] = set()
    for level, module, names in _imports(str(path), stat.st_mtime_ns, stat.st_size):
        parts = module.split(".") if module else []
        if level:
            if here is None or level - 1 > len(here):
                continue  # a relative import outside the package
            parts = here[: len(here) - (level - 1)] + parts
        elif parts[0] == PACKAGE:
            parts = parts[1:]
        else:
            continue
        name = ".".join(parts)
        if module_file(name, package_dir) is None:
            raise ValueError(f"{path} imports {PACKAGE}.{name}, which does not exist")
        targets.add(name)
        for imported in names:  # ``from a import b``: b may be a module
            sub = f"{name}.{imported}" if name else imported
            if module_file(sub, package_dir) is not None:
                targets.add(sub)
    return {parent for name in targets for parent in _with_parents(name)}


def _with_parents(name: str) -> list[str]:
    """``"a.b"`` -> ``["", "a", "a.b"]``: a module and the packages whose ``__init__`` it runs."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts) + 1)]


def module_dependencies(path: str | Path, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package modules that ``path`` runs (itself included), transitively, as sorted files."""
    package_dir, path = Path(package_dir), Path(path)
    seen: set[str] = set()
    here = _package_parts(path, package_dir)
    if here is not None:
        module = here + ([] if path.stem == "__init__" else [path.stem])
        seen.update(_with_parents(".".join(module)))
    todo = [path]
    while todo:
        current = todo.pop()
        for name in sorted(imported_modules(current, package_dir) - seen):
            seen.add(name)
            todo.append(module_file(name, package_dir))
    return sorted(module_file(name, package_dir) for name in seen)
