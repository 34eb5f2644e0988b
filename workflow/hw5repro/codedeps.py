"""Which package modules a workflow script runs: its ``hw5repro`` imports, followed transitively.

The rules list these modules as inputs (``code(...)`` in workflow/rules/common.smk), so editing a
module reruns exactly the steps whose scripts import it, directly or through another module.
Imports are read with :mod:`ast`, anywhere in a file (also inside functions): ``import hw5repro.x``,
``from hw5repro.x import y``, ``from hw5repro import x``, ``from .x import y``, ``from . import x``.
Importing any module runs the package's ``__init__.py``, so it counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "hw5repro"
PACKAGE_DIR = Path(__file__).resolve().parent


def imported_modules(path: str | Path, package_dir: str | Path = PACKAGE_DIR) -> set[str]:
    """Names of the package modules that the file ``path`` imports itself (not transitively);
    ``"__init__"`` stands for the package."""
    package_dir = Path(package_dir)
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    found: set[str] = set()

    def names_in_package(names: list[ast.alias]) -> None:
        # `from hw5repro import x` / `from . import x`: x is a module or a name of __init__.py
        for alias in names:
            if (package_dir / f"{alias.name}.py").is_file():
                found.add(alias.name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    found.add("__init__")
                    if len(parts) > 1:
                        found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: only inside the package
                parts = node.module.split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == PACKAGE:
                parts = node.module.split(".")[1:]
            else:
                continue
            found.add("__init__")
            if parts:
                found.add(parts[0])
            else:
                names_in_package(node.names)
    return found


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
            module = package_dir / f"{name}.py"
            if not module.is_file():
                raise ValueError(f"{current} imports {PACKAGE}.{name}, but {module} does not exist")
            seen.add(name)
            todo.append(module)
    return sorted(package_dir / f"{name}.py" for name in seen)
