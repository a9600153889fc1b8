# Report stage: tables (and later figures, leaderboard) from results/ alone.


def report_outputs():
    return expand("reports/table2.{ext}", ext=["md", "csv", "tex"])


rule report:
    input:
        offline_runs(),
    output:
        report_outputs(),
    params:
        report=report_config(),
    log:
        "logs/report.log",
    shell:
        "{PYTHON} -m imrl report --results results/runs --out reports --config {params.report:q} > {log} 2>&1"
