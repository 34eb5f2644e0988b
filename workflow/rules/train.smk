# Problem 6: one training job per run. The job keeps its checkpoint after the last epoch, so a
# job run again for a run that already finished writes its outputs again without training.
rule train:
    input:
        data=rules.fetch_mnist.output.manifest,
        code=code("train.py"),
    output:
        metrics="results/runs/{run_id}/metrics.csv",
        model="results/runs/{run_id}/model.pt",
        info="results/runs/{run_id}/run.json",
    log:
        "results/logs/train/{run_id}.log",
    benchmark:
        "results/benchmarks/train/{run_id}.tsv"
    # the critical path (data.smk)
    priority: 1
    conda:
        ENV
    threads: config["resources"]["train"]["threads"]
    resources:
        **train_resources(),
    params:
        settings=training_params(config),
        data=data_params(),
        checkpoint="results/runs/{run_id}/checkpoint.pt",
        attempts="results/runs/{run_id}/attempts.log",
        run_log="results/runs/{run_id}/train.log",
    script:
        "../scripts/train.py"
