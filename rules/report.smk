# Report stage: tables, figures and the leaderboard from results/ alone (no training).
# Outputs marked report(...) go into `snakemake --report report.html` with the captions
# under rules/report/.

TABLES = ["table2.md", "table2.csv", "table2.tex", "table2_vs_paper.md", "table2_vs_paper.csv"]
FIGURES = ["figure2.png", "figure2.pdf", "figure3.png", "figure3.pdf"]


def report_outputs():
    return [f"reports/{name}" for name in TABLES + FIGURES + ["leaderboard.html"]] + ["results/leaderboard.csv"]


def report_grid_config():
    """report_config() and the seeds: the report reads exactly the runs of its `runs`
    input (these datasets x methods and simulators x online methods, these seeds) and
    nothing else under results/runs, so a run left by an earlier config is never pooled."""
    return json.dumps({**json.loads(report_config()), "seeds": SEEDS}, sort_keys=True)


rule report:
    input:
        **report_inputs(),
    output:
        report("reports/table2.md", caption="report/table2.rst", category="Tables", labels={"table": "Table II"}),
        report("reports/table2.csv", caption="report/table2.rst", category="Tables",
               labels={"table": "Table II (CSV, with p-values)"}),
        "reports/table2.tex",
        report("reports/table2_vs_paper.md", caption="report/table2_vs_paper.rst", category="Tables",
               labels={"table": "Table II vs the paper"}),
        report("reports/table2_vs_paper.csv", caption="report/table2_vs_paper.rst", category="Tables",
               labels={"table": "Table II vs the paper (CSV)"}),
        report("reports/figure2.png", caption="report/figure2.rst", category="Figures",
               labels={"figure": "Figure 2"}),
        "reports/figure2.pdf",
        report("reports/figure3.png", caption="report/figure3.rst", category="Figures",
               labels={"figure": "Figure 3"}),
        "reports/figure3.pdf",
        report("reports/leaderboard.html", caption="report/leaderboard.rst", category="Leaderboard",
               labels={"page": "Leaderboard"}),
        report("results/leaderboard.csv", caption="report/leaderboard.rst", category="Leaderboard",
               labels={"page": "Leaderboard (CSV)"}),
    params:
        report=report_grid_config(),
    log:
        "logs/report.log",
    shell:
        "{PYTHON} -m imrl report --results results/runs --out reports --config {params.report:q}"
        " --reported {input.reported:q} --submissions results/submissions --leaderboard-csv results/leaderboard.csv"
        " > {log} 2>&1"
