# Problem 6: tables across runs and the figures of the memorisation experiment.
from hw5repro.reporting.figure_names import FIGURES


rule memorisation_tables:
    input:
        metrics=run_outputs("metrics.csv"),
        info=run_outputs("run.json"),
        code=code("memorisation_tables.py"),
    output:
        epochs="results/tables/epochs.csv",
        final=report(
            "results/tables/final_metrics.csv",
            caption="../../report/captions/final_metrics.rst",
            category="Problem 6: memorisation",
            subcategory="Tables",
        ),
        summary=report(
            "results/tables/summary.csv",
            caption="../../report/captions/summary.rst",
            category="Problem 6: memorisation",
            subcategory="Tables",
        ),
        facts="results/tables/memorisation.json",
    log:
        "results/logs/memorisation_tables.log",
    benchmark:
        "results/benchmarks/memorisation_tables.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    params:
        config={
            k: RESULT_CONFIG[k] for k in ("experiment", "training", "data", "model")
        },
    script:
        "../scripts/memorisation_tables.py"


rule memorisation_figures:
    input:
        epochs=rules.memorisation_tables.output.epochs,
        final=rules.memorisation_tables.output.final,
        summary=rules.memorisation_tables.output.summary,
        code=code("memorisation_figures.py"),
    output:
        png=[
            report(
                f"results/figures/{name}.png",
                caption=f"../../report/captions/{name}.rst",
                category="Problem 6: memorisation",
                subcategory="Figures",
            )
            for name in FIGURES
        ],
        pdf=expand("results/figures/{name}.pdf", name=FIGURES),
    log:
        "results/logs/memorisation_figures.log",
    benchmark:
        "results/benchmarks/memorisation_figures.tsv"
    conda:
        ENV
    # figures drawn by as many forked processes (hw5repro.reporting.figures.figures_job), capped by --cores
    threads: 4
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    params:
        threshold=config["experiment"]["fit_threshold"],
    script:
        "../scripts/memorisation_figures.py"


MEMORISATION_OUTPUTS = [
    *rules.memorisation_tables.output,
    *rules.memorisation_figures.output,
]
