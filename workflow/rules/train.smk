rule train:
    input:
        subset=rules.mnist_subset.output[0],
        corrupted=rules.corrupt_dataset.output[0],
        code=code("train.py"),
    output:
        metrics="results/runs/{run_id}/metrics.csv",
        model="results/runs/{run_id}/model.pt",
        info="results/runs/{run_id}/run.json",
    log:
        "results/logs/train/{run_id}.log",
    benchmark:
        "results/benchmarks/train/{run_id}.tsv"
    conda:
        ENV
    threads: config["resources"]["train"]["threads"]
    resources:
        **train_resources(),
    params:
        settings=training_settings(),
        checkpoint="results/runs/{run_id}/checkpoint.pt",
    script:
        "../scripts/train.py"
