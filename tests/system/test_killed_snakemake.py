"""Snakemake killed (SIGKILL) while its SLURM training jobs run and finish unnoticed, then each
recovery of profiles/slurm/README.md ('After Snakemake was killed'), with its documented commands
run as written: no finished run trains again, no epoch is lost or trained twice, and the killed
run's jobs' log lines survive in results/runs/{run}/train.log.

Three runs on the test cluster's two CPUs: two train at once, the third starts when one ends;
Snakemake is killed once one run has finished and the third is in its epoch loop. Snakemake
checks its jobs only a minute after it submitted them here (not 2 s, the profile's), so that the
finished ones are surely unnoticed when it is killed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from system.test_slurm import slurm_env  # noqa: F401 - the running cluster (a fixture)

from helpers import REPO, SNAKEMAKE, fresh_copy, write_config

pytestmark = [pytest.mark.system, pytest.mark.slow]

EPOCHS = 8
#: Small and quick: a width-0.125 network (the smoke preset's) on 256 images, 4 to 8 s a job.
TINY = {
    "data": {"train_size": 256, "test_size": 100},
    "experiment": {"input_corruptions": [], "seeds": [0]},
    "training": {"epochs": EPOCHS, "checkpoint_every": 1, "device": "cpu"},
    "resources": {"train": {"threads": 1, "runtime": 10}},
}
RATIOS = {"cancel": [0.0, 0.5, 1.0], "wait": [0.1, 0.2, 0.3], "rerun": [0.6, 0.7, 0.8]}
README = REPO / "profiles" / "slurm" / "README.md"


def _documented_commands() -> list[str]:
    """The commands of the README's recovery block, in order (comments left out)."""
    text = README.read_text()
    section = text[text.index("## After Snakemake was killed") :]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def _runs(path: str) -> list[str]:
    return [f"labels_r{ratio:g}_s0" for ratio in RATIOS[path]]


def _command(runs: list[str], *extra: str) -> list[str]:
    """The user's command for the runs' results (targets before the flags)."""
    targets = [f"results/runs/{run}/metrics.csv" for run in runs]
    return ["snakemake", *targets, "--cores", "8", "--profile", "slurm", *extra,
            "--configfile", "config/smoke.yaml"]  # fmt: skip


def _shell(command: str | list[str], clone: Path, env: dict, check=True):
    proc = subprocess.run(
        command, shell=isinstance(command, str), cwd=clone, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(f"{command} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr}")
    return proc


def _states(run_uuid: str, env: dict) -> dict[str, tuple[str, str]]:
    """The killed run's SLURM jobs by run: (job ID, state), finished ones included (MinJobAge)."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", run_uuid, "--format=%i %T %k"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    jobs = {}
    for line in out.splitlines():
        job_id, state, comment = line.split()
        jobs[comment.removeprefix("rule_train_wildcards_")] = (job_id, state)
    return jobs


def _active(run_uuid: str, env: dict) -> dict[str, str]:
    """The killed run's jobs that are still pending or running, by run: their job IDs."""
    states = _states(run_uuid, env).items()
    return {run: job_id for run, (job_id, state) in states if state in {"PENDING", "RUNNING"}}


def _trained_epochs(clone: Path, run: str) -> list[int]:
    text = (clone / f"results/runs/{run}/train.log").read_text()
    return [int(n) for n in re.findall(rf"{re.escape(run)} epoch (\d+) train_loss", text)]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh copy of the checkout whose config/smoke.yaml is the tiny configuration (so that
    the README's commands run as written)."""
    root = fresh_copy(tmp_path_factory.mktemp("killed") / "hw5repro")
    ratios = sorted(r for rs in RATIOS.values() for r in rs)
    experiment = {**TINY["experiment"], "label_ratios": ratios}
    write_config(root / "config" / "smoke.yaml", **{**TINY, "experiment": experiment})
    return root


@pytest.fixture(autouse=True)
def _unlocked_after(clone):
    """A test that fails after its kill leaves no lock that fails the next test as well."""
    yield
    subprocess.run([SNAKEMAKE, "--unlock", "--configfile", "config/smoke.yaml"], cwd=clone,
                   capture_output=True, timeout=300)  # fmt: skip


def _killed(clone: Path, runs: list[str], env: dict, tmp_path: Path):
    """Start the command, and SIGKILL Snakemake once a run has finished and another is in its
    epoch loop; returns the run ID and the jobs' states then."""
    console = tmp_path / "killed.out"
    late = ["--slurm-init-seconds-before-status-checks", "60"]
    with console.open("w") as out:
        proc = subprocess.Popen(
            _command(runs, *late), cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 240
        run_uuid, jobs = None, {}
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"SLURM run ID: (\S+)", console.read_text())
            run_uuid = found and found.group(1)
            jobs = _states(run_uuid, env) if run_uuid else {}
            states = [state for _, state in jobs.values()]
            in_loop = [
                run for run, (_, state) in jobs.items()
                if state == "RUNNING" and (clone / f"results/runs/{run}/train.log").is_file()
                and _trained_epochs(clone, run)
            ]  # fmt: skip
            if "COMPLETED" in states and in_loop:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no state to kill Snakemake in: {jobs}\n{console.read_text()[-3000:]}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    output = console.read_text()
    assert "(Rule: train)" not in output, output[-3000:]  # the finished runs went unnoticed
    return run_uuid, jobs


def _log_sizes(clone: Path, runs: list[str]) -> dict[str, int]:
    logs = {run: clone / f"results/runs/{run}/train.log" for run in runs}
    return {run: len(log.read_text()) if log.is_file() else 0 for run, log in logs.items()}


def _check_recovered(clone: Path, runs: list[str], jobs: dict):
    """Every run complete and each of its epochs trained once: none trained twice, none lost;
    the lines of the killed run's jobs that started are kept in the run's own log."""
    for run in runs:
        metrics = (clone / f"results/runs/{run}/metrics.csv").read_text().splitlines()
        assert len(metrics) == 1 + EPOCHS, run
        assert _trained_epochs(clone, run) == list(range(1, EPOCHS + 1)), run
        log = (clone / f"results/runs/{run}/train.log").read_text()
        if jobs[run][1] in {"RUNNING", "COMPLETED"}:
            assert f"SLURM job {jobs[run][0]})" in log, run


def test_recovery_by_cancelling_the_orphans(slurm_env, clone, tmp_path):  # noqa: F811
    runs = _runs("cancel")
    env = {**slurm_env, "PATH": os.pathsep.join([str(Path(SNAKEMAKE).parent), slurm_env["PATH"]])}
    run_uuid, jobs = _killed(clone, runs, env, tmp_path)
    killed_at = _log_sizes(clone, runs)
    find, queue, cancel, unlock = _documented_commands()
    assert run_uuid in _shell(find, clone, env).stdout
    listed = _shell(queue, clone, env).stdout
    # the orphans may end while the commands run: every job still active after the listing
    # was active during it, and a job that has ended is not listed
    active = _active(run_uuid, env)
    assert active, "every orphan ended before the recovery could be tested"
    for run, job_id in active.items():
        assert re.search(rf"{job_id} +\w+ +{run_uuid} rule_train_wildcards_{run}", listed), listed
    for job_id, state in jobs.values():
        if state == "COMPLETED":
            assert not re.search(rf"^ *{job_id} ", listed, re.MULTILINE), listed
    # the 8 characters squeue --me shows cancel nothing
    _shell(cancel.replace("<SLURM run ID>", run_uuid[:8]), clone, env)
    assert "CANCELLED" not in {state for _, state in _states(run_uuid, env).values()}
    _shell(cancel.replace("<SLURM run ID>", run_uuid), clone, env)
    deadline = time.monotonic() + 60
    while any(
        s in {"RUNNING", "PENDING", "COMPLETING"} for _, s in _states(run_uuid, env).values()
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    cancelled = {run for run, (_, s) in _states(run_uuid, env).items() if s == "CANCELLED"}
    _shell(unlock, clone, env)
    _shell(_command(runs), clone, env)
    _check_recovered(clone, runs, jobs)
    for run in cancelled:  # resumed where its SIGTERM checkpoint left it, if it had one
        resumed = re.search(rf"resumed {run} from \S+ at epoch (\d+)", _tail(clone, run, killed_at))
        assert resumed is None or 1 <= int(resumed.group(1)) < EPOCHS


def _tail(clone: Path, run: str, killed_at: dict) -> str:
    return (clone / f"results/runs/{run}/train.log").read_text()[killed_at[run] :]


def test_recovery_by_waiting_for_the_orphans(slurm_env, clone, tmp_path):  # noqa: F811
    runs = _runs("wait")
    env = {**slurm_env, "PATH": os.pathsep.join([str(Path(SNAKEMAKE).parent), slurm_env["PATH"]])}
    run_uuid, jobs = _killed(clone, runs, env, tmp_path)
    _, queue, _, unlock = _documented_commands()
    deadline = time.monotonic() + 120
    while run_uuid in _shell(queue, clone, env).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    _shell(unlock, clone, env)
    _shell(_command(runs), clone, env)
    _check_recovered(clone, runs, jobs)
    # Whatever Snakemake's metadata says (here: rerun every training job), a finished run is
    # not trained again: its job writes the same outputs from its last checkpoint.
    before = {run: (clone / f"results/runs/{run}/metrics.csv").read_bytes() for run in runs}
    marks = _log_sizes(clone, runs)
    proc = _shell(_command(runs, "--forcerun", "train"), clone, env)
    forced = proc.stdout + proc.stderr
    assert forced.count("(Rule: train)") == len(runs), forced[-3000:]
    for run in runs:
        assert (clone / f"results/runs/{run}/metrics.csv").read_bytes() == before[run]
        again = _tail(clone, run, marks)
        assert f"{run}: already trained ({EPOCHS} epochs, fingerprint " in again, again
    _check_recovered(clone, runs, jobs)


def test_recovery_by_rerunning_at_once(slurm_env, clone, tmp_path):  # noqa: F811
    """Without cancelling or waiting: a duplicate of a running orphan fails at once (the run's
    lock) and the command is rerun once the orphan ended."""
    runs = _runs("rerun")
    env = {**slurm_env, "PATH": os.pathsep.join([str(Path(SNAKEMAKE).parent), slurm_env["PATH"]])}
    run_uuid, jobs = _killed(clone, runs, env, tmp_path)
    killed_at = _log_sizes(clone, runs)
    _, queue, _, unlock = _documented_commands()
    _shell(unlock, clone, env)
    first = _shell(_command(runs), clone, env, check=False)
    output = first.stdout + first.stderr
    if first.returncode != 0:  # an orphan still ran when its duplicate started
        assert "RunLockedError" in output, output[-3000:]
        deadline = time.monotonic() + 120
        while run_uuid in _shell(queue, clone, env).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        _shell(_command(runs), clone, env)
    _check_recovered(clone, runs, jobs)
    # a duplicate that ran after its orphan ended wrote the outputs again, training nothing
    rewritten = [run for run in runs if "already trained" in _tail(clone, run, killed_at)]
    print(f"duplicates that wrote a finished run again: {rewritten}")
