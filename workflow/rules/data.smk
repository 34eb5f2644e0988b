# The data's identity is its SHA-256 checksums (verified by hw5repro.data.mnist.fetch), not the
# folder it came from: data.local_dir is read from the config by the script, not a param, so
# moving the same files elsewhere reruns nothing. A missing or incomplete local_dir fails at
# validation. Each training job draws the subset and its run's corruption from these files itself
# (a fraction of a second; hw5repro.training.job.train_job), so nothing else stands between the
# data and the first epoch. This rule and training (train.smk) are the workflow's critical path: with fewer
# cores than ready jobs they go first (priority), and problems 1-5 fill the cores they leave.
rule fetch_mnist:
    input:
        code=code("fetch_mnist.py"),
    output:
        raw=expand("resources/mnist/{file}", file=MNIST_FILES),
        # what training depends on: the files' checksums, small enough for Snakemake to compare
        # by content (hw5repro.data.mnist.MANIFEST)
        manifest=f"resources/mnist/{MNIST_MANIFEST}",
    log:
        "results/logs/fetch_mnist.log",
    benchmark:
        "results/benchmarks/fetch_mnist.tsv"
    priority: 1
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    script:
        "../scripts/fetch_mnist.py"
