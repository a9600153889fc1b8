"""Reports regenerated from ``results/`` alone, without training: run records are read
and validated by ``imrl.report.results``; ``imrl.report.table2`` renders the paper's
Table II (Markdown, CSV, LaTeX)."""
