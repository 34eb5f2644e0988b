"""The SLURM profile (profiles/slurm) against a real single-node SLURM cluster.

tests/slurm/start-cluster.sh starts the cluster (partitions ``main`` and ``gpu``, GPUs as a GRES
without a driver); tests/slurm/install.sh installs SLURM (CI runs it as root). The training of a
reduced smoke configuration runs through the profile as SLURM jobs and must give the same metrics
as a local run; a failing training job must be reported with its logs.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, require_system, snakemake, write_config

pytestmark = [pytest.mark.system, pytest.mark.slow]

SLURM_SCRIPTS = REPO / "tests" / "slurm"
PROFILE = REPO / "profiles" / "slurm"
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
TRAINING = {"epochs": 2}

SUBMITTED = re.compile(
    r"Job (?P<job>\d+) has been submitted with SLURM jobid (?P<slurm_id>\d+) "
    r"\(log: (?P<log>[^)]+)\)"
)
SBATCH_CALL = re.compile(r"^sbatch call: (?P<call>sbatch .*)$", re.MULTILINE)
RUN_UUID = re.compile(r"SLURM run ID: (\S+)")


def _slurm_installed() -> bool:
    return all(
        shutil.which(tool)
        for tool in ("sbatch", "squeue", "scontrol", "slurmctld", "slurmd", "munged")
    )


def _cluster_up(env: dict) -> bool:
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, env=env)
    return ping.returncode == 0 and "UP" in ping.stdout


def _run_script(name: str, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(SLURM_SCRIPTS / name)], capture_output=True, text=True, env=env, timeout=180
    )
    if proc.returncode != 0:
        pytest.fail(f"tests/slurm/{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """A running SLURM cluster (started here and stopped at the end, unless it was already up);
    yields the environment for sbatch/squeue/snakemake with SLURM_CONF set."""
    require_system(_slurm_installed(), "SLURM not installed: run tests/slurm/install.sh (as root)")
    require_system(os.geteuid() == 0, "starting the SLURM test cluster needs root")
    env = {
        **os.environ,
        "HW5_SLURM_DIR": str(SLURM_DIR),
        "SLURM_CONF": str(SLURM_DIR / "slurm.conf"),
    }
    # One test session at a time on this machine's single cluster.
    lock = open(tmp_path_factory.getbasetemp().parent / "hw5-slurm-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        was_up = _cluster_up(env)
        start = _run_script("start-cluster.sh", env)
        print(start.stdout)
        env_file = SLURM_DIR / "env.sh"
        assert env_file.read_text().strip() == f"export SLURM_CONF={SLURM_DIR / 'slurm.conf'}"
        assert _cluster_up(env)
        yield env
    finally:
        try:
            if not was_up:
                print(_run_script("stop-cluster.sh", env).stdout)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()


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


def _copy_data(src: Path, dst: Path) -> None:
    """The raw MNIST files and the training subset of a finished run, with Snakemake's records of
    them (mtimes kept), so that a second workdir starts at the corruption step."""
    shutil.copytree(src / "resources", dst / "resources")
    (dst / "results" / "data").mkdir(parents=True)
    shutil.copy2(src / "results/data/mnist_subset.pt", dst / "results/data/mnist_subset.pt")
    shutil.copytree(src / ".snakemake" / "metadata", dst / ".snakemake" / "metadata")


def _job_env(slurm_log: Path) -> dict:
    """GPU-related variables of the job's environment, from its SLURM log (the job step prints
    its environment with --verbose)."""
    text = slurm_log.read_text()
    names = ("SLURM_JOB_PARTITION", "SLURM_GPUS", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")
    found = {}
    for name in names:
        m = re.search(rf"'{name}': '([^']*)'", text)
        if m:
            found[name] = m.group(1)
    return found


def _submissions(output: str, env: dict) -> list[dict]:
    """Every SLURM job Snakemake submitted, with its scontrol record and sbatch call."""
    calls = {}
    for call in SBATCH_CALL.findall(output):
        comment = re.search(r"--comment (\S+)", call).group(1)
        calls[comment] = call
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
                "job_env": _job_env(Path(m["log"])),
                "cpus": int(record["NumCPUs"]),
                "time_limit": record["TimeLimit"],
                "job_name": record["JobName"],
                "slurm_log": m["log"],
                "sbatch": calls[comment],
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
    """The same targets through the profile, as SLURM jobs; returns (workdir, output, jobs).
    The raw data and training subset come from the local run, so the SLURM run submits the data
    jobs of the runs (corrupt_dataset) and the training jobs: two DAG levels, not four."""
    workdir = tmp_path_factory.mktemp("slurm-run")
    config = write_config(workdir / "config.yaml", experiment=EXPERIMENT, training=TRAINING)
    _copy_data(local_run, workdir)
    # --verbose logs the sbatch calls here and the job's environment in its SLURM log, which
    # --slurm-keep-successful-logs keeps.
    proc = snakemake(
        workdir,
        config,
        "--profile",
        str(PROFILE),
        "--verbose",
        "--slurm-keep-successful-logs",
        *TARGETS,
        env=slurm_env,
    )
    output = proc.stdout + proc.stderr
    return workdir, output, _submissions(output, slurm_env)


def test_training_runs_as_slurm_jobs_on_gpu_partition(slurm_env, slurm_run, local_run):
    workdir, output, jobs = slurm_run
    resources = yaml.safe_load((workdir / "config.yaml").read_text())["resources"]["train"]
    run_uuid = RUN_UUID.search(output).group(1)
    by_rule = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    assert sorted(by_rule) == ["corrupt_dataset", "train"], by_rule.keys()

    # Every job ran to completion on the cluster under this Snakemake run's name.
    for job in jobs:
        assert job["state"] == "COMPLETED" and job["exit_code"] == "0:0", job
        assert job["job_name"] == run_uuid
        assert job["sbatch"].startswith("sbatch --parsable")

    # Training: one GPU job per run, in partition gpu, with the config's resources.
    train = sorted(by_rule["train"], key=lambda j: j["run_id"])
    assert [j["run_id"] for j in train] == RUNS
    for job in train:
        assert job["partition"] == "gpu"
        assert job["gpus_requested"] == "gres:gpu:1"
        assert " -p gpu " in job["sbatch"] and "--gpus=1" in job["sbatch"]
        # The job saw its GPU as a GPU job does (no driver here, so torch falls back to the CPU).
        assert job["job_env"] == {
            "SLURM_JOB_PARTITION": "gpu",
            "SLURM_GPUS": "1",
            "CUDA_VISIBLE_DEVICES": job["job_env"].get("CUDA_VISIBLE_DEVICES"),
            "SLURM_JOB_ID": str(job["slurm_job_id"]),
        }
        assert job["job_env"]["CUDA_VISIBLE_DEVICES"] in {"0", "1"}
        assert f"--mem {resources['mem_mb']} " in job["sbatch"]
        assert f" -t {resources['runtime']} " in job["sbatch"]
        assert job["time_limit"] == f"00:{resources['runtime']:02d}:00"
        assert job["cpus"] == resources["threads"]
        assert "slurm-jobstep" in job["sbatch"]
        info = json.loads((workdir / f"results/runs/{job['run_id']}/run.json").read_text())
        assert info["device"] == "cpu"  # no driver on the test node: CPU fallback (device auto)

    # Data jobs: partition main (the profile's default), no GPU.
    data = sorted(by_rule["corrupt_dataset"], key=lambda j: j["run_id"])
    assert [j["run_id"] for j in data] == RUNS
    for job in data:
        assert job["partition"] == "main"
        assert job["gpus_requested"] == ""
        assert " -p main " in job["sbatch"] and "--gpus" not in job["sbatch"]
        assert job["job_env"]["SLURM_JOB_PARTITION"] == "main"
        assert "SLURM_GPUS" not in job["job_env"]
        assert job["job_env"]["SLURM_JOB_ID"] == str(job["slurm_job_id"])

    # The results equal the local run's, except wall-clock columns.
    for run in RUNS:
        slurm_rows = _read_metrics(workdir / f"results/runs/{run}/metrics.csv")
        local_rows = _read_metrics(local_run / f"results/runs/{run}/metrics.csv")
        assert len(slurm_rows) == TRAINING["epochs"]
        assert slurm_rows == local_rows, run

    evidence = {
        "slurm_version": subprocess.run(
            ["sinfo", "--version"], capture_output=True, text=True, env=slurm_env
        ).stdout.strip(),
        "snakemake_run_uuid": run_uuid,
        "profile": "profiles/slurm/config.v8+.yaml",
        "targets": TARGETS,
        "metrics_equal_to_local_run": True,
        "compared_columns_exclude": sorted(TIMING_COLUMNS),
        "jobs": jobs,
    }
    _save_evidence(workdir, evidence)


def _save_evidence(workdir: Path, evidence: dict) -> None:
    text = json.dumps(evidence, indent=2)
    (workdir / "slurm_evidence.json").write_text(text)
    if os.environ.get("HW5_EVIDENCE_DIR"):
        target = Path(os.environ["HW5_EVIDENCE_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        (target / "slurm_evidence.json").write_text(text)
    print(text)


def test_failing_slurm_job_reports_its_logs(slurm_env, slurm_run, tmp_path):
    """training.device: cuda fails on the GPU-less node; Snakemake exits non-zero, names the
    SLURM log and the rule log (which hold the clear error) and keeps other jobs' outputs."""
    src, _, _ = slurm_run
    workdir = tmp_path / "failing"
    shutil.copytree(src, workdir, symlinks=True, ignore=shutil.ignore_patterns("slurm_logs"))
    experiment = {**EXPERIMENT, "label_ratios": [0.0, 0.5, 1.0]}
    config = write_config(
        workdir / "config.yaml", experiment=experiment, training={**TRAINING, "device": "cuda"}
    )
    failing, other = "labels_r0_s0", "results/data/corrupted/labels_r0.5_s0.pt"
    assert not (workdir / other).exists()
    # The training parameters changed, so the finished run is redone (and fails); the data job of
    # a new run is submitted alongside it. --retries 0: the profile's retry would fail again.
    proc = snakemake(
        workdir,
        config,
        "--profile",
        str(PROFILE),
        "--retries",
        "0",
        f"results/runs/{failing}/metrics.csv",
        other,
        check=False,
        env=slurm_env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "SLURM status is: 'FAILED'" in output, output[-3000:]

    submitted = {m["log"]: m["slurm_id"] for m in SUBMITTED.finditer(output)}
    train_logs = [log for log in submitted if f"/rule_train/{failing}/" in log]
    assert len(train_logs) == 1, output[-3000:]
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

    # The failed job's outputs are removed; the other job's output and earlier results are kept.
    assert not (workdir / f"results/runs/{failing}/metrics.csv").exists()
    assert (workdir / other).is_file()
    assert (workdir / "results/runs/labels_r1_s0/metrics.csv").is_file()
