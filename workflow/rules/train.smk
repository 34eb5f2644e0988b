# Problem 6: one training job per run, or per group of training.runs_per_job runs fused in one
# process (common.smk: train_outputs and the job_* input functions). Every run's files end up in
# results/runs/{run} either way.
rule train:
    input:
        data=rules.fetch_mnist.output.manifest,
        code=code("train.py"),
    output:
        **train_outputs(),
    log:
        "results/logs/train/{job}.log",
    benchmark:
        "results/benchmarks/train/{job}.tsv"
    # the critical path (data.smk)
    priority: 1
    conda:
        ENV
    threads: config["resources"]["train"]["threads"]
    resources:
        **train_resources(),
    params:
        settings=job_settings,
        data=data_params(),
        runs=job_runs,
        run_files=job_run_files,
        checkpoints=job_checkpoints,
        attempts=job_attempts,
        run_logs=job_run_logs,
    script:
        "../scripts/train.py"


if RUNS_PER_JOB > 1:

    # A fused group's run, at its usual place: hard links to the group's files (no copy).
    rule run_files:
        input:
            group=group_of_run,
            code=code("run_files.py"),
        output:
            **run_files("results/runs/{run_id}"),
        log:
            "results/logs/run_files/{run_id}.log",
        benchmark:
            "results/benchmarks/run_files/{run_id}.tsv"
        localrule: True
        conda:
            ENV
        resources:
            runtime=config["resources"]["default"]["runtime"],
            mem_mb=config["resources"]["default"]["mem_mb"],
        script:
            "../scripts/run_files.py"
