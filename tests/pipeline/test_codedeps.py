"""Code dependencies are computed from the scripts' imports, transitively (hw5repro.codedeps)."""

import re

import pytest

from helpers import REPO
from hw5repro.pipeline.codedeps import imported_modules, module_dependencies

PACKAGE = REPO / "workflow" / "hw5repro"
SCRIPTS = REPO / "workflow" / "scripts"


def stems(paths):
    return {path.stem for path in paths}


def test_training_script_depends_on_what_training_imports():
    deps = stems(module_dependencies(SCRIPTS / "train.py", PACKAGE))
    # training.py imports experiment at module level and device/model inside train_job too
    assert {"training", "experiment", "model", "device", "corruption", "logs"} <= deps
    assert "experiment" in imported_modules(PACKAGE / "training.py", PACKAGE)
    assert not deps & {"plotting", "figures", "report", "analysis"}


def test_figure_scripts_depend_on_plotting_through_their_module():
    assert stems(module_dependencies(SCRIPTS / "memorisation_figures.py", PACKAGE)) == {
        "__init__",
        "logs",
        "figures",
        "figure_names",
        "analysis",
        "experiment",
        "plotting",
    }
    for problem in ("backprop", "vanishing_gradients", "momentum", "receptive_field"):
        deps = stems(module_dependencies(SCRIPTS / f"problem_{problem}.py", PACKAGE))
        assert {problem, "plotting"} <= deps, problem


def test_every_import_form_is_followed(tmp_path):
    pkg = tmp_path / "hw5repro"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("a", "b", "c", "d", "e", "unused"):
        (pkg / f"{name}.py").write_text("")
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")  # inside a function
    (pkg / "c.py").write_text("import hw5repro.d\nimport os\n")
    (pkg / "d.py").write_text("from hw5repro import e, __version__\n")
    script = tmp_path / "script.py"
    script.write_text("import json\nfrom hw5repro.a import run\n")
    assert stems(module_dependencies(script, pkg)) == {"__init__", "a", "b", "c", "d", "e"}
    assert stems(module_dependencies(pkg / "c.py", pkg)) == {"__init__", "c", "d", "e"}


def test_an_edited_file_is_read_again(tmp_path):
    """Imports are parsed once per version of a file (the Snakefile asks for every rule): an
    edit in the same process is seen, and so is a module that appears later."""
    pkg = tmp_path / "hw5repro"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("b", "c"):
        (pkg / f"{name}.py").write_text("")
    script = tmp_path / "script.py"
    script.write_text("from hw5repro import b, later\n")
    assert imported_modules(script, pkg) == {"__init__", "b"}
    (pkg / "later.py").write_text("")
    assert imported_modules(script, pkg) == {"__init__", "b", "later"}
    script.write_text("from hw5repro.c import x\n")
    assert imported_modules(script, pkg) == {"__init__", "c"}


def test_a_missing_module_is_named(tmp_path):
    pkg = tmp_path / "hw5repro"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    script = tmp_path / "script.py"
    script.write_text("from hw5repro.gone import x\n")
    with pytest.raises(ValueError, match=r"imports hw5repro\.gone"):
        module_dependencies(script, pkg)


def test_each_rule_computes_its_code_from_its_own_script():
    """code("x.py") in a rule names the script the rule runs (no hand-written module lists)."""
    rules = 0
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^\s*rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block)
            code = re.search(r"code=code\(([^)]*)\)", block)
            if not script:
                continue
            rules += 1
            assert code, f"rule {name} lists no code input"
            assert code.group(1) == f'"{script.group(1)}"', name
    # fetch, train, run_files (under an if), tables, figures, problems (5), provenance, report, pdf
    assert rules == 13
