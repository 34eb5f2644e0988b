# Problems 1-5 of the homework: each rule writes results.json (every number the report cites),
# its tables (CSV) and a figure (PNG + PDF) under results/problems/<name>/.
rule problem_backprop:
    input:
        code=code("problem_backprop.py"),
    output:
        results="results/problems/backprop/results.json",
        comparison="results/problems/backprop/comparison.csv",
        table=report(
            "results/problems/backprop/table.csv",
            caption="../../report/captions/backprop_table.rst",
            category="Problems 1-5",
            subcategory="1 Backpropagation",
        ),
        gradients="results/problems/backprop/gradients_layer1.csv",
        figure=report(
            "results/problems/backprop/figure.png",
            caption="../../report/captions/backprop_figure.rst",
            category="Problems 1-5",
            subcategory="1 Backpropagation",
        ),
        figure_pdf="results/problems/backprop/figure.pdf",
    log:
        "results/logs/problems/backprop.log",
    benchmark:
        "results/benchmarks/problems/backprop.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    script:
        "../scripts/problem_backprop.py"


rule problem_vanishing_gradients:
    input:
        code=code("problem_vanishing_gradients.py"),
    output:
        results="results/problems/vanishing_gradients/results.json",
        layers="results/problems/vanishing_gradients/layers.csv",
        table_b=report(
            "results/problems/vanishing_gradients/table_b.csv",
            caption="../../report/captions/vanishing_gradients_table.rst",
            category="Problems 1-5",
            subcategory="2 Vanishing gradients",
        ),
        table_A="results/problems/vanishing_gradients/table_A.csv",
        figure=report(
            "results/problems/vanishing_gradients/figure.png",
            caption="../../report/captions/vanishing_gradients_figure.rst",
            category="Problems 1-5",
            subcategory="2 Vanishing gradients",
        ),
        figure_pdf="results/problems/vanishing_gradients/figure.pdf",
    log:
        "results/logs/problems/vanishing_gradients.log",
    benchmark:
        "results/benchmarks/problems/vanishing_gradients.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    script:
        "../scripts/problem_vanishing_gradients.py"


rule problem_momentum:
    input:
        code=code("problem_momentum.py"),
    output:
        results="results/problems/momentum/results.json",
        steps="results/problems/momentum/steps.csv",
        table=report(
            "results/problems/momentum/table.csv",
            caption="../../report/captions/momentum_table.rst",
            category="Problems 1-5",
            subcategory="3 Momentum",
        ),
        figure=report(
            "results/problems/momentum/figure.png",
            caption="../../report/captions/momentum_figure.rst",
            category="Problems 1-5",
            subcategory="3 Momentum",
        ),
        figure_pdf="results/problems/momentum/figure.pdf",
    log:
        "results/logs/problems/momentum.log",
    benchmark:
        "results/benchmarks/problems/momentum.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    script:
        "../scripts/problem_momentum.py"


rule problem_receptive_field:
    input:
        code=code("problem_receptive_field.py"),
    output:
        results="results/problems/receptive_field/results.json",
        fields=report(
            "results/problems/receptive_field/fields.csv",
            caption="../../report/captions/receptive_field_fields.rst",
            category="Problems 1-5",
            subcategory="4 Receptive fields",
        ),
        checks="results/problems/receptive_field/checks.csv",
        figure=report(
            "results/problems/receptive_field/figure.png",
            caption="../../report/captions/receptive_field_figure.rst",
            category="Problems 1-5",
            subcategory="4 Receptive fields",
        ),
        figure_pdf="results/problems/receptive_field/figure.pdf",
    log:
        "results/logs/problems/receptive_field.log",
    benchmark:
        "results/benchmarks/problems/receptive_field.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    script:
        "../scripts/problem_receptive_field.py"


rule problem_inception_cost:
    input:
        code=code("problem_inception_cost.py"),
    output:
        results="results/problems/inception_cost/results.json",
        module1=report(
            "results/problems/inception_cost/module1.csv",
            caption="../../report/captions/inception_cost_module1.rst",
            category="Problems 1-5",
            subcategory="5 Inception cost",
        ),
        module2=report(
            "results/problems/inception_cost/module2.csv",
            caption="../../report/captions/inception_cost_module2.rst",
            category="Problems 1-5",
            subcategory="5 Inception cost",
        ),
        figure=report(
            "results/problems/inception_cost/figure.png",
            caption="../../report/captions/inception_cost_figure.rst",
            category="Problems 1-5",
            subcategory="5 Inception cost",
        ),
        figure_pdf="results/problems/inception_cost/figure.pdf",
    log:
        "results/logs/problems/inception_cost.log",
    benchmark:
        "results/benchmarks/problems/inception_cost.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    script:
        "../scripts/problem_inception_cost.py"


PROBLEM_OUTPUTS = [
    *rules.problem_backprop.output,
    *rules.problem_vanishing_gradients.output,
    *rules.problem_momentum.output,
    *rules.problem_receptive_field.output,
    *rules.problem_inception_cost.output,
]
