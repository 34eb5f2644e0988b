"""The SLURM profile (profiles/slurm) against a real single-node SLURM cluster.

tests/slurm/start-cluster.sh starts the cluster (partitions ``main`` and ``gpu``, GPUs as a GRES
without a driver); tests/slurm/install.sh installs SLURM (CI runs it as root). The user's command,
``snakemake --cores 8 --profile slurm --configfile <cfg>``, runs the whole workflow of a reduced
smoke configuration at the root of a fresh copy of the checkout (so that nothing lands in the
checkout itself): the training jobs go to SLURM and must give the same metrics as a local run,
every other job runs locally (``localrules``). A failing training job must be reported with its
logs, and not resubmitted.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers import (
    PROBLEM_RULES,
    REPO,
    SNAKEMAKE,
    fresh_copy,
    preset_config,
    require_system,
    snakemake,
    write_config,
)

# One xdist worker runs this file, in order (--dist loadfile; one cluster; the cluster's start
# test needs it down): its waits on SLURM's clock overlap with the other workers' tests.
pytestmark = [pytest.mark.system, pytest.mark.slow]

SLURM_SCRIPTS = REPO / "tests" / "slurm"
SLURM_DIR = Path(os.environ.get("HW5_SLURM_DIR", "/tmp/hw5-slurm"))
RUNS = ["labels_r0_s0", "labels_r1_s0"]
TARGETS = [f"results/runs/{run}/metrics.csv" for run in RUNS]
#: Wall-clock columns of metrics.csv; every other column is deterministic on a CPU.
TIMING_COLUMNS = {"epoch_seconds", "eval_seconds"}
#: The reduced smoke configuration: two training runs of two epochs.
EXPERIMENT = {
    "label_ratios": [0.0, 1.0],
    "input_corruptions": [],
    "seeds": [0],
    "fit_threshold": 0.9,
}
#: (training.device: cpu: the cluster's GPUs have no driver, where a job with ``auto`` fails.)
TRAINING = {"epochs": 2, "device": "cpu"}

SUBMITTED = re.compile(
    r"Job (?P<job>\d+) has been submitted with SLURM jobid (?P<slurm_id>\d+) "
    r"\(log: (?P<log>[^)]+)\)"
)
RUN_UUID = re.compile(r"SLURM run ID: (\S+)")
JOB_HEADER = re.compile(r"^(local)?rule (\w+):$", re.MULTILINE)
#: Every rule of a whole run of the reduced configuration but train runs on the submitting node.
LOCAL_RULES = {
    "all",
    "fetch_mnist",
    "memorisation_tables",
    "memorisation_figures",
    *PROBLEM_RULES,
    "provenance",
    "report",
}


#: What a test's copy of the SLURM run's clone leaves out: its SLURM logs, and the checkpoints
#: its finished runs keep (a copied one would make a test see "the first checkpoint" at once).
COPY_IGNORES = shutil.ignore_patterns("slurm_logs", "checkpoint.pt*")


def _slurm_installed() -> bool:
    return all(
        shutil.which(tool)
        for tool in ("sbatch", "squeue", "scontrol", "slurmctld", "slurmd", "munged")
    )


def _cluster_up(env: dict) -> bool:
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, env=env)
    return ping.returncode == 0 and "UP" in ping.stdout


def _bash(name: str, env: dict) -> subprocess.CompletedProcess:
    """Run tests/slurm/``name``, whatever its exit status."""
    return subprocess.run(
        ["bash", str(SLURM_SCRIPTS / name)], capture_output=True, text=True, env=env, timeout=180
    )


def _run_script(name: str, env: dict) -> subprocess.CompletedProcess:
    proc = _bash(name, env)
    if proc.returncode != 0:
        pytest.fail(f"tests/slurm/{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _late_daemons(bin_dir: Path, delay_s: float, start: bool = True) -> dict:
    """An environment whose ``slurmctld`` and ``slurmd`` return at once and start the real daemon
    ``delay_s`` later (or never), as on a loaded machine, where a daemon writes its pid file well
    after its command returned."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for daemon in ("slurmctld", "slurmd"):
        real = shutil.which(daemon)
        launch = f'exec {real} "$@"' if start else "exit 0"
        shim = bin_dir / daemon
        shim.write_text(f"#!/bin/bash\n( sleep {delay_s}; {launch} ) >/dev/null 2>&1 &\n")
        shim.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HW5_SLURM_DIR": str(SLURM_DIR),
        "SLURM_CONF": str(SLURM_DIR / "slurm.conf"),
    }


def test_start_cluster_waits_for_daemons_that_write_their_pid_file_late(tmp_path):
    """CI once failed with "slurmd exited" while slurmd was alive: its pid file did not exist yet
    when the script first looked. A daemon starting 2 s late must be waited for; a daemon that
    never starts must be reported by name once the grace period is over."""
    require_system(_slurm_installed(), "SLURM not installed: run tests/slurm/install.sh (as root)")
    require_system(os.geteuid() == 0, "starting the SLURM test cluster needs root")
    env = _late_daemons(tmp_path / "late", delay_s=2)
    with _cluster_lock():
        require_system(not _cluster_up(env), "the test cluster must be down to test its start")
        try:
            start = _bash("start-cluster.sh", env)
            assert start.returncode == 0, start.stdout + start.stderr
            assert f"node {os.uname().nodename.split('.')[0]} idle" in start.stdout
            assert _cluster_up(env)
        finally:
            _run_script("stop-cluster.sh", env)
        assert not _cluster_up(env)

        never = _late_daemons(tmp_path / "never", delay_s=0, start=False)
        failed = _bash("start-cluster.sh", {**never, "HW5_SLURM_PIDFILE_GRACE": "2"})
        assert failed.returncode == 1
        assert "ERROR: slurmctld wrote no pid file" in failed.stderr
        _run_script("stop-cluster.sh", env)


@contextlib.contextmanager
def _cluster_lock():
    """One test session at a time on this machine's single cluster (also across sessions)."""
    with open(Path(tempfile.gettempdir()) / "hw5-slurm-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def slurm_env():
    """A running SLURM cluster (started here and stopped at the end, unless it was already up);
    yields the environment for sbatch/squeue/snakemake with SLURM_CONF set."""
    require_system(_slurm_installed(), "SLURM not installed: run tests/slurm/install.sh (as root)")
    require_system(os.geteuid() == 0, "starting the SLURM test cluster needs root")
    env = {
        **os.environ,
        "HW5_SLURM_DIR": str(SLURM_DIR),
        "SLURM_CONF": str(SLURM_DIR / "slurm.conf"),
    }
    with _cluster_lock():
        yield from _running_cluster(env)


def _running_cluster(env: dict):
    """The cluster started (unless it was up already) and stopped after."""
    was_up = _cluster_up(env)
    try:
        start = _run_script("start-cluster.sh", env)
        print(start.stdout)
        env_file = SLURM_DIR / "env.sh"
        assert env_file.read_text().strip() == f"export SLURM_CONF={SLURM_DIR / 'slurm.conf'}"
        assert _cluster_up(env)
        yield env
    finally:
        if not was_up:
            print(_run_script("stop-cluster.sh", env).stdout)


def _read_metrics(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, f"{path} has no rows"
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def _scontrol_job(job_id: str, env: dict) -> dict:
    """The job's record (kept for MinJobAge=600 s after it ends) as a dict."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return dict(re.findall(r"(\S+?)=(\S*)", out))


def _user_command(clone: Path, configfile: Path, *targets: str, env: dict):
    """``snakemake --cores 8 --profile slurm --configfile <cfg>`` as a user types it, at the root
    of the clone (``snakemake`` found on PATH: the project's environment).
    Returns (completed process, wall seconds)."""
    env = {**env, "PATH": os.pathsep.join([str(Path(SNAKEMAKE).parent), env["PATH"]])}
    # Targets first: --configfile takes several files, so targets after it would be read as such.
    cmd = ["snakemake", *targets, "--cores", "8", "--profile", "slurm"]
    started = time.monotonic()
    proc = subprocess.run(
        [*cmd, "--configfile", str(configfile)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    return proc, time.monotonic() - started


def _submissions(output: str, env: dict) -> list[dict]:
    """Every SLURM job Snakemake submitted, with its scontrol record."""
    jobs = []
    for m in SUBMITTED.finditer(output):
        record = _scontrol_job(m["slurm_id"], env)
        comment = record["Comment"]
        rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
        jobs.append(
            {
                "slurm_job_id": int(m["slurm_id"]),
                "rule": rule,
                "run_id": wildcards or None,
                "partition": record["Partition"],
                "state": record["JobState"],
                "exit_code": record["ExitCode"],
                "gpus_requested": record.get("TresPerJob", ""),
                "requeue": record["Requeue"],
                "restarts": int(record["Restarts"]),
                "cpus": int(record["NumCPUs"]),
                "mem": record["MinMemoryNode"],
                "time_limit": record["TimeLimit"],
                "job_name": record["JobName"],
                "slurm_log": m["log"],
            }
        )
    return jobs


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The reduced smoke training run locally (the reference for the SLURM run)."""
    workdir = tmp_path_factory.mktemp("slurm-local")
    config = write_config(workdir / "config.yaml", experiment=EXPERIMENT, training=TRAINING)
    snakemake(workdir, config, "--cores", "2", *TARGETS)
    return workdir


@pytest.fixture(scope="module")
def slurm_run(slurm_env, local_run, tmp_path_factory):
    """The whole workflow of the reduced configuration by the user's command at the root of a
    fresh clone; returns (clone, output, jobs, seconds)."""
    base = tmp_path_factory.mktemp("slurm-run")
    clone = fresh_copy(base / "hw5repro")
    config = write_config(base / "config.yaml", experiment=EXPERIMENT, training=TRAINING)
    proc, seconds = _user_command(clone, config, env=slurm_env)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"snakemake --profile slurm failed ({proc.returncode}):\n{output[-8000:]}")
    return clone, output, _submissions(output, slurm_env), seconds


def test_user_command_runs_training_as_slurm_jobs(slurm_env, slurm_run, local_run):
    clone, output, jobs, seconds = slurm_run
    resources = preset_config("smoke")["resources"]["train"]
    run_uuid = RUN_UUID.search(output).group(1)
    assert (
        "Using profiles slurm and workflow specific profile profiles/default for setting "
        "default command line arguments."
    ) in output

    # Only the training jobs went to the cluster; every other job ran on this node.
    headers = JOB_HEADER.findall(output)
    assert {rule for local, rule in headers if not local} == {"train"}, headers
    assert {rule for local, rule in headers if local} == LOCAL_RULES, headers
    assert (clone / "results" / "report" / "index.html").is_file()
    assert sorted(job["rule"] for job in jobs) == ["train", "train"], jobs

    # A quiet console: no empty shell command after every job (every rule runs a script), no
    # SLURM resource on a local job, the plugin's account guess at most once per submission
    # thread, of which it has two (profiles/slurm/README.md, 'Messages you can ignore').
    assert "Shell command" not in output
    local_resources = _local_job_resources(output)
    assert len(local_resources) == len(LOCAL_RULES), output[-3000:]
    assert not [r for r in local_resources if "slurm" in r], local_resources
    assert 1 <= output.count("No SLURM account given, trying to guess.") <= 2

    # Training: one GPU job per run, in partition gpu, with the config's resources, requeued by
    # SLURM if preempted or its node fails; completed under this Snakemake run's name.
    train = sorted(jobs, key=lambda j: j["run_id"])
    assert [j["run_id"] for j in train] == RUNS
    for job in train:
        assert job["state"] == "COMPLETED" and job["exit_code"] == "0:0", job
        assert job["job_name"] == run_uuid
        assert job["partition"] == "gpu"
        assert job["gpus_requested"] == "gres:gpu:1"
        assert job["requeue"] == "1" and job["restarts"] == 0
        assert job["mem"] == f"{resources['mem_mb']}M"
        assert job["time_limit"] == f"00:{resources['runtime']:02d}:00"
        assert job["cpus"] == resources["threads"]
        # The training process saw its GPU as on a GPU node (CUDA_VISIBLE_DEVICES set by SLURM;
        # no driver here, so the configuration asks for the CPU: training.device: cpu). The job
        # step passes on the job's identity, not SLURM_GPUS (the request is TresPerJob above).
        info = json.loads((clone / f"results/runs/{job['run_id']}/run.json").read_text())
        assert info["device"] == "cpu"
        scheduler = info["scheduler"]
        assert scheduler["SLURM_JOB_ID"] == str(job["slurm_job_id"])
        assert scheduler["SLURM_JOB_PARTITION"] == "gpu"
        assert scheduler["CUDA_VISIBLE_DEVICES"] in {"0", "1"}

    # The results equal the local run's, except wall-clock columns.
    for run in RUNS:
        slurm_rows = _read_metrics(clone / f"results/runs/{run}/metrics.csv")
        local_rows = _read_metrics(local_run / f"results/runs/{run}/metrics.csv")
        assert len(slurm_rows) == TRAINING["epochs"]
        assert slurm_rows == local_rows, run

    evidence = {
        "slurm_version": subprocess.run(
            ["sinfo", "--version"], capture_output=True, text=True, env=slurm_env
        ).stdout.strip(),
        "command": "snakemake --cores 8 --profile slurm --configfile <reduced smoke config>",
        "cwd": "root of a fresh copy of the checkout",
        "wall_seconds": round(seconds, 1),
        "snakemake_run_uuid": run_uuid,
        "profile": "profiles/slurm/config.v8+.yaml (via the ./slurm link)",
        "local_rules": sorted(LOCAL_RULES),
        "metrics_equal_to_local_run": True,
        "compared_columns_exclude": sorted(TIMING_COLUMNS),
        "jobs": jobs,
    }
    _save_evidence(clone, evidence)


def _local_job_resources(output: str) -> list[str]:
    """The ``resources:`` line of each local job on the console (its block's indented lines)."""
    found, in_local = [], False
    for line in output.splitlines():
        if not line.startswith("    "):
            in_local = bool(re.fullmatch(r"localrule \w+:", line))
        elif in_local and line.startswith("    resources: "):
            found.append(line.removeprefix("    resources: "))
    return found


def _save_evidence(workdir: Path, evidence: dict) -> None:
    text = json.dumps(evidence, indent=2)
    (workdir / "slurm_evidence.json").write_text(text)
    if os.environ.get("HW5_EVIDENCE_DIR"):
        target = Path(os.environ["HW5_EVIDENCE_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        (target / "slurm_evidence.json").write_text(text)
    print(text)


TIME_LIMIT_RUN, TIME_LIMIT_EPOCHS = "labels_r1_s0", 2000  # only the warning stops it


@pytest.fixture(scope="module")
def time_limit_job(slurm_env, slurm_run, tmp_path_factory):
    """A training job with a limit of seven minutes, started in the background before the failing
    and the requeue tests (which take the cluster's other slot), so that its minutes of waiting
    for SLURM's warning overlap theirs; ``test_a_training_job_warned_...`` checks it at the end.
    Yields (Snakemake's process, its console file, the working directory)."""
    base = tmp_path_factory.mktemp("time-limit")
    workdir = base / "hw5repro"
    shutil.copytree(slurm_run[0], workdir, symlinks=True, ignore=COPY_IGNORES)
    config = write_config(
        base / "config.yaml",
        experiment=EXPERIMENT,
        training={**TRAINING, "epochs": TIME_LIMIT_EPOCHS, "checkpoint_every": 5000},
        resources={"train": {"runtime": 7}},
    )
    env = {**slurm_env, "PATH": os.pathsep.join([str(Path(SNAKEMAKE).parent), slurm_env["PATH"]])}
    target = f"results/runs/{TIME_LIMIT_RUN}/metrics.csv"
    cmd = ["snakemake", target, "--cores", "8", "--profile", "slurm", "--configfile", str(config)]
    console = base / "snakemake.out"
    with console.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc, console, workdir
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_failing_slurm_job_is_reported_with_its_log_and_not_retried(
    slurm_env, slurm_run, time_limit_job, tmp_path
):
    """training.device: cuda fails on the GPU-less node: a failure a second try cannot fix, so it
    is submitted once. Snakemake exits non-zero, names the SLURM log and the rule log, prints the
    rule log (with the clear error) and keeps other jobs' outputs."""
    src = slurm_run[0]
    workdir = tmp_path / "hw5repro"
    shutil.copytree(src, workdir, symlinks=True, ignore=COPY_IGNORES)
    experiment = {**EXPERIMENT, "label_ratios": [0.0, 0.5, 1.0]}
    config = write_config(
        tmp_path / "config.yaml", experiment=experiment, training={**TRAINING, "device": "cuda"}
    )
    failing, other = "labels_r0_s0", "results/problems/backprop/results.json"
    (workdir / other).unlink()
    # The training parameters changed, so the finished run is redone (and fails); problem 1, its
    # output removed, runs locally alongside it.
    proc, _ = _user_command(
        workdir, config, f"results/runs/{failing}/metrics.csv", other, env=slurm_env
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "SLURM status is: 'FAILED'" in output, output[-3000:]

    submitted = {m["log"]: m["slurm_id"] for m in SUBMITTED.finditer(output)}
    train_logs = [log for log in submitted if f"/rule_train/{failing}/" in log]
    assert len(submitted) == 1 and len(train_logs) == 1, output[-3000:]  # not resubmitted
    slurm_log = Path(train_logs[0])
    # Snakemake's error report names both logs.
    error_report = output[output.index("Error in rule train:") :]
    assert str(slurm_log) in error_report
    assert f"results/logs/train/{failing}.log" in error_report
    assert slurm_log.is_file() and slurm_log.is_relative_to(workdir / ".snakemake/slurm_logs")
    assert _scontrol_job(submitted[str(slurm_log)], slurm_env)["JobState"] == "FAILED"

    message = "training.device is 'cuda' but no CUDA device is available"
    rule_log = (workdir / f"results/logs/train/{failing}.log").read_text()
    assert "DeviceError" in rule_log and message in rule_log
    assert message in slurm_log.read_text()
    # The console shows the rule log itself (show-failed-logs), error included.
    shown = output[output.index(f"Logfile results/logs/train/{failing}.log:") :]
    assert message in shown

    # The failed job's outputs are removed; the other job's output and earlier results are kept.
    assert not (workdir / f"results/runs/{failing}/metrics.csv").exists()
    assert (workdir / other).is_file()
    assert (workdir / "results/runs/labels_r1_s0/metrics.csv").is_file()


def _wait_for(predicate, what: str, proc: subprocess.Popen, console: Path, timeout=300):
    """Poll ``predicate`` until it returns something true; fail if Snakemake (``proc``, writing
    to ``console``) exits first or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            output = console.read_text()[-4000:]
            pytest.fail(f"snakemake exited ({proc.returncode}) before {what}:\n{output}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def test_preempted_training_job_is_requeued_and_resumes(
    slurm_env, slurm_run, time_limit_job, tmp_path
):
    """A training job that SLURM requeues while it runs (as on preemption or node failure; here
    `scontrol requeue`) checkpoints on SIGTERM, runs again as the same SLURM job, resumes from its
    checkpoint and completes; Snakemake waits for it without resubmitting anything, and the run's
    log keeps both attempts."""
    import torch

    src = slurm_run[0]
    workdir = tmp_path / "hw5repro"
    shutil.copytree(src, workdir, symlinks=True, ignore=COPY_IGNORES)
    run = "labels_r1_s0"
    epochs = 24  # long enough to requeue it while it runs (about a second an epoch)
    training = {**TRAINING, "epochs": epochs, "checkpoint_every": 2}
    config = write_config(tmp_path / "config.yaml", experiment=EXPERIMENT, training=training)
    env = {**slurm_env, "PATH": os.pathsep.join([str(Path(SNAKEMAKE).parent), slurm_env["PATH"]])}
    target = f"results/runs/{run}/metrics.csv"
    cmd = ["snakemake", target, "--cores", "8", "--profile", "slurm", "--configfile", str(config)]
    console = tmp_path / "snakemake.out"  # a file, not a pipe nobody reads while it runs
    checkpoint = workdir / f"results/runs/{run}/checkpoint.pt"
    with console.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def submitted_job():
            m = SUBMITTED.search(console.read_text())
            return m and m["slurm_id"]

        def state():
            return _scontrol_job(job_id, slurm_env)["JobState"]

        job_id = _wait_for(submitted_job, "the training job's submission", proc, console)
        _wait_for(lambda: state() == "RUNNING", "the training job to run", proc, console)
        _wait_for(checkpoint.is_file, "the first checkpoint", proc, console)
        assert state() == "RUNNING"
        subprocess.run(["scontrol", "requeue", job_id], env=slurm_env, check=True)
        _wait_for(lambda: state() == "PENDING", "the job to be requeued", proc, console)
        # SLURM holds a requeued job for a while (BeginTime); let it start again now.
        subprocess.run(
            ["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=slurm_env, check=True
        )
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = console.read_text()
    assert proc.returncode == 0, output[-4000:]
    submitted = [m["slurm_id"] for m in SUBMITTED.finditer(output)]
    assert submitted == [job_id], output[-4000:]  # requeued by SLURM, not resubmitted
    record = _scontrol_job(job_id, slurm_env)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", record

    log = (workdir / f"results/logs/train/{run}.log").read_text()
    starts = re.findall(r"---- job started \(pid \d+ on \S+, SLURM job (\d+)\)", log)
    # Snakemake removes a job's log before it starts the job; the requeued job appends to it.
    assert starts == [job_id, job_id], log
    resumed = re.search(rf"resumed {run} from \S+ at epoch (\d+)", log)
    assert resumed and 2 <= int(resumed.group(1)) < epochs, log
    assert len(_read_metrics(workdir / f"results/runs/{run}/metrics.csv")) == epochs
    # the job keeps its final checkpoint: run again, it trains nothing
    final = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert final["epoch"] == epochs and len(final["metrics"]) == epochs and final["final"]


def test_a_training_job_warned_of_its_time_limit_checkpoints_and_stops(slurm_env, time_limit_job):
    """The profile asks SLURM for SIGTERM 5 minutes before a training job's time limit
    (--signal=TERM@300): the job finishes its epoch, writes its checkpoint and stops, and SLURM
    reports it FAILED, not TIMEOUT, long before the SIGKILL of the limit. With a limit of seven
    minutes the warning is due after two; SLURM may send it up to a minute early (sbatch's
    documentation; 15 s early here with six minutes), so it comes one to two minutes in, when
    the job is in its epoch loop. With a limit under five minutes it came at once, at times
    before the loop had set its handler, and SIGTERM's default action ended the job without a
    checkpoint."""
    import torch

    proc, console, workdir = time_limit_job
    proc.wait(timeout=900)
    run, epochs = TIME_LIMIT_RUN, TIME_LIMIT_EPOCHS
    output = console.read_text()
    assert proc.returncode != 0, output[-3000:]
    assert "SLURM status is: 'FAILED'" in output, output[-3000:]
    (job_id,) = [m["slurm_id"] for m in SUBMITTED.finditer(output)]
    record = _scontrol_job(job_id, slurm_env)
    assert record["JobState"] == "FAILED", record
    minutes, seconds = record["RunTime"].split(":")[-2:]
    assert 50 <= int(minutes) * 60 + int(seconds) < 420, record  # at the warning, before the limit

    log = (workdir / f"results/logs/train/{run}.log").read_text()
    stopped = re.search(r"stopped by SIGTERM after epoch (\d+); checkpoint written", log)
    assert stopped, log[-3000:]
    checkpoint = workdir / f"results/runs/{run}/checkpoint.pt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert state["epoch"] == int(stopped.group(1)) and 1 <= state["epoch"] < epochs
    assert len(state["metrics"]) == state["epoch"]
