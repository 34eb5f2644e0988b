# The data's identity is its SHA-256 checksums (verified by hw5repro.mnist.fetch), not the folder
# it came from: data.local_dir is read from the config by the script, not a param, so moving the
# same files elsewhere reruns nothing. A missing or incomplete local_dir fails at validation.
# The data rules and training (train.smk) are the workflow's critical path: with fewer cores than
# ready jobs they go first (priority), and problems 1-5 fill the cores they leave.
rule fetch_mnist:
    input:
        code=code("fetch_mnist.py"),
    output:
        expand("resources/mnist/{file}", file=MNIST_FILES),
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


rule mnist_subset:
    input:
        raw=rules.fetch_mnist.output,
        code=code("mnist_subset.py"),
    output:
        "results/data/mnist_subset.pt",
    log:
        "results/logs/mnist_subset.log",
    benchmark:
        "results/benchmarks/mnist_subset.tsv"
    priority: 1
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    params:
        seed=config["seed"],
        train_size=config["data"]["train_size"],
        test_size=config["data"]["test_size"],
    script:
        "../scripts/mnist_subset.py"


rule corrupt_dataset:
    input:
        subset=rules.mnist_subset.output[0],
        code=code("corrupt_dataset.py"),
    output:
        "results/data/corrupted/{run_id}.pt",
    log:
        "results/logs/corrupt_dataset/{run_id}.log",
    benchmark:
        "results/benchmarks/corrupt_dataset/{run_id}.tsv"
    priority: 1
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    script:
        "../scripts/corrupt_dataset.py"
