"""Code dependencies are computed from the scripts' imports, transitively
(hw5repro.pipeline.codedeps)."""

import re

import pytest

from helpers import REPO
from hw5repro.pipeline.codedeps import imported_modules, module_dependencies

PACKAGE = REPO / "workflow" / "hw5repro"
SCRIPTS = REPO / "workflow" / "scripts"


def modules(paths, package=PACKAGE):
    """Files as their paths below the package (``training/job.py``)."""
    return {path.relative_to(package).as_posix() for path in paths}


def test_training_script_depends_on_what_training_imports():
    deps = modules(module_dependencies(SCRIPTS / "train.py", PACKAGE))
    # the job imports data and training modules at module level, through sub-packages and
    # relative imports (``from ..data.mnist import make_subset``, ``from .loop import train``)
    assert {
        "__init__.py",
        "training/__init__.py",
        "training/job.py",
        "training/loop.py",
        "training/settings.py",
        "training/model.py",
        "training/device.py",
        "data/__init__.py",
        "data/mnist.py",
        "data/corruption.py",
        "data/experiment.py",
        "kernels/__init__.py",
        "kernels/epilogues.py",
        "kernels/triton_kernels.py",  # imported inside a function (_kernels)
        "pipeline/__init__.py",
        "pipeline/logs.py",
        "pipeline/config.py",
        "pipeline/runlock.py",
    } <= deps
    assert not deps & {"plotting.py", "reporting/figures.py", "reporting/render.py"}
    assert not any(dep.startswith(("reporting/", "problems/")) for dep in deps)
    assert "data.experiment" in imported_modules(PACKAGE / "training" / "job.py", PACKAGE)


def test_figure_scripts_depend_on_plotting_through_their_module():
    assert modules(module_dependencies(SCRIPTS / "memorisation_figures.py", PACKAGE)) == {
        "__init__.py",
        "data/__init__.py",
        "data/experiment.py",
        "pipeline/__init__.py",
        "pipeline/logs.py",
        "plotting.py",
        "reporting/__init__.py",
        "reporting/analysis.py",
        "reporting/figure_names.py",
        "reporting/figures.py",
    }
    for problem in ("backprop", "vanishing_gradients", "momentum", "receptive_field"):
        deps = modules(module_dependencies(SCRIPTS / f"problem_{problem}.py", PACKAGE))
        assert {f"problems/{problem}.py", "problems/__init__.py", "plotting.py"} <= deps, problem
        assert not any(d.startswith(("training/", "data/")) for d in deps), problem


def _package(tmp_path, files: dict[str, str]):
    pkg = tmp_path / "hw5repro"
    for name, text in {"__init__.py": "", **files}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    return pkg


def test_every_import_form_is_followed(tmp_path):
    pkg = _package(
        tmp_path,
        {
            "a.py": "from .b import thing\n",
            "b.py": "def f():\n    from . import c\n",  # inside a function
            "c.py": "import hw5repro.d\nimport os\n",
            "d.py": "from hw5repro import e, __version__\n",
            "e.py": "",
            "unused.py": "",
        },
    )
    script = tmp_path / "script.py"
    script.write_text("import json\nfrom hw5repro.a import run\n")
    assert modules(module_dependencies(script, pkg), pkg) == {
        "__init__.py", "a.py", "b.py", "c.py", "d.py", "e.py"
    }  # fmt: skip
    assert modules(module_dependencies(pkg / "c.py", pkg), pkg) == {
        "__init__.py", "c.py", "d.py", "e.py"
    }  # fmt: skip


def test_sub_packages_and_relative_imports_are_followed(tmp_path):
    """Importing ``hw5repro.sub.mod`` runs hw5repro/__init__.py and sub/__init__.py too; ``..``
    climbs out of a sub-package; ``from . import m`` names a module of the package; a relative
    import above the top package is not the package's."""
    pkg = _package(
        tmp_path,
        {
            "train/__init__.py": "",
            "train/job.py": "from ..data.load import x\nfrom .loop import run\n",
            "train/loop.py": "from . import steps\nfrom ..util import helper\n",
            "train/steps.py": "import hw5repro.kernels.fast as fast\n",
            "data/__init__.py": "from .load import x\n",
            "data/load.py": "",
            "kernels/__init__.py": "",
            "kernels/fast.py": "def f():\n    from ... import outside\n",  # above the package
            "util.py": "",
            "unused/__init__.py": "",
        },
    )
    assert imported_modules(pkg / "train" / "job.py", pkg) == {
        "", "data", "data.load", "train", "train.loop"
    }  # fmt: skip
    assert imported_modules(pkg / "train" / "loop.py", pkg) == {"", "train", "train.steps", "util"}
    script = tmp_path / "script.py"
    script.write_text("from hw5repro.train.job import train_job\n")
    assert modules(module_dependencies(script, pkg), pkg) == {
        "__init__.py",
        "train/__init__.py",
        "train/job.py",
        "train/loop.py",
        "train/steps.py",
        "data/__init__.py",
        "data/load.py",
        "kernels/__init__.py",
        "kernels/fast.py",
        "util.py",
    }
    # a package module: itself and the packages above it
    assert modules(module_dependencies(pkg / "data" / "load.py", pkg), pkg) == {
        "__init__.py",
        "data/__init__.py",
        "data/load.py",
    }


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
    assert imported_modules(script, pkg) == {"", "b"}
    (pkg / "later.py").write_text("")
    assert imported_modules(script, pkg) == {"", "b", "later"}
    script.write_text("from hw5repro.c import x\n")
    assert imported_modules(script, pkg) == {"", "c"}


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
    # fetch, train, tables, figures, problems (5), provenance, report, pdf
    assert rules == 12
