"""Reports regenerated from ``results/`` alone, without training: run records are read
and validated by ``imrl.report.results``; ``table2`` renders the paper's Table II
(Markdown, CSV, LaTeX) with the paired tests of ``significance``; ``reported`` sets the
paper's published numbers beside ours; ``figures`` draws Figures 2 and 3 from the online
runs' CTR curves; ``leaderboard`` writes the leaderboard CSV and its offline HTML page;
``build`` runs them all for one configuration."""
