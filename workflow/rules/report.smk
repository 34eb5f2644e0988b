# The report: provenance, HTML + LaTeX from one content model (report/sections.yaml), and the PDF.
from hw5repro.reporting.provenance import git_state
from hw5repro.reporting.sections import load_sections, section_inputs, section_templates

REPORT_DIR = REPO / "report"
REPORT_SECTIONS = load_sections(REPORT_DIR / "sections.yaml", REPORT_DIR)
# Every table, JSON and figure the sections read: the single source of the report's inputs.
REPORT_INPUTS = section_inputs(REPORT_SECTIONS)


rule provenance:
    input:
        results=REPORT_INPUTS,
        runs=run_outputs("run.json"),
        benchmarks=job_benchmarks(exclude={"provenance", "report", "report_pdf"}),
        code=code("provenance.py"),
    output:
        report(
            "results/report/provenance.json",
            caption="../../report/captions/provenance.rst",
            category="Report",
        ),
    log:
        "results/logs/report/provenance.log",
    benchmark:
        "results/benchmarks/report/provenance.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    params:
        config=RESULT_CONFIG,
        git=git_state(REPO),
        benchmark_root="results/benchmarks",
    script:
        "../scripts/provenance.py"


rule report:
    input:
        results=REPORT_INPUTS,
        provenance=rules.provenance.output[0],
        sections=repo_files(
            [
                REPORT_DIR / "sections.yaml",
                *section_templates(REPORT_SECTIONS, REPORT_DIR),
            ]
        ),
        templates=template("index.html.j2", "report.tex.j2", "style.css"),
        code=code("render_report.py"),
    output:
        html=report(
            "results/report/index.html",
            caption="../../report/captions/report.rst",
            category="Report",
        ),
        tex="results/report/report.tex",
        figures=report(
            directory("results/report/figures"),
            patterns=["{path}.png"],
            caption="../../report/captions/report_figures.rst",
            category="Report",
            subcategory="Figures beside the HTML",
        ),
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    params:
        config=RESULT_CONFIG,
    script:
        "../scripts/render_report.py"


rule report_pdf:
    input:
        tex=rules.report.output.tex,
        figures=rules.report.output.figures,
        code=code("compile_report.py"),
    output:
        report(
            "results/report/report.pdf",
            caption="../../report/captions/report_pdf.rst",
            category="Report",
        ),
    log:
        "results/logs/report/report_pdf.log",
    benchmark:
        "results/benchmarks/report/report_pdf.tsv"
    conda:
        ENV
    resources:
        runtime=config["resources"]["default"]["runtime"],
        mem_mb=config["resources"]["default"]["mem_mb"],
    script:
        "../scripts/compile_report.py"


REPORT_OUTPUTS = [
    rules.report.output.html,
    rules.report.output.tex,
    rules.provenance.output[0],
] + ([rules.report_pdf.output[0]] if config["report"]["pdf"] else [])
