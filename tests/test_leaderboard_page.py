"""The leaderboard page's data, without a browser: ranks, intervals, the paper's numbers
beside ours, mean ranks over datasets, learning curves, links, and the CSV's rows."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrl import registry
from imrl.report import figures
from imrl.report.leaderboard import (CURVE_POINTS, REPORTED, REPRODUCED, SUBMITTED, build_leaderboard,
                                     leaderboard_csv, load_submissions)
from imrl.report.links import PAPERS, SECTIONS, commit_link, method_links, repository_url, web_url
from imrl.report.reported import load_reported
from imrl.report.results import load_runs
from tests.conftest import REPO_ROOT
from tests.crafted_results import learning_curve, offline_record, online_record, write_record

REPORTED_CSV = REPO_ROOT / "results" / "reported" / "imrl-paper-table2.csv"
SHA = "0123456789abcdef0123456789abcdef01234567"
#: nDCG@20 per seed on amazon-cd; "tie" has top's mean exactly (sums of binary fractions are exact).
NDCG = {"top": [0.25, 0.375, 0.5], "tie": [0.5, 0.375, 0.25], "mid": [0.20, 0.22, 0.21], "imrl": [0.05, 0.06, 0.04]}
#: nDCG@20 on synthetic (one seed each): the order differs from amazon-cd's.
NDCG_SYNTHETIC = {"top": 0.1, "mid": 0.3, "imrl": 0.2}


@pytest.fixture
def data(tmp_path):
    runs = tmp_path / "runs"
    for method, values in NDCG.items():
        for seed, ndcg in enumerate(values):
            record = offline_record("amazon-cd", method, seed, (ndcg / 2, 0.02, ndcg))
            record["provenance"]["git_commit"] = SHA
            write_record(runs, record)
    for method, ndcg in NDCG_SYNTHETIC.items():
        write_record(runs, offline_record("synthetic", method, 0, (0.1, 0.01, ndcg)))
    for index, method in enumerate(["imrl", "random"]):
        for seed in range(3 - index):   # random: two seeds
            write_record(runs, online_record("recsim", method, seed, learning_curve(0.3 - 0.1 * index, seed, n=500)))
    write_record(runs, online_record("recsim", "deers", 0, [0.1, 0.2]))
    write_record(runs, online_record("recogym", "imrl", 0, [], status="failed"))
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    (submissions / "theirs.json").write_text(json.dumps(offline_record("amazon-cd", "theirs", 0, (0.1, 0.02, 0.25))))
    accepted, rejected = load_submissions(submissions)
    return build_leaderboard(load_runs(runs), accepted, rejected, load_reported(REPORTED_CSV), "paper",
                             order=["synthetic", "amazon-cd", "recsim"], repository="https://example.org/o/r")


def section(data, name):
    return next(s for s in data["sections"] if s["name"] == name)


def row(data, name, method, kind=REPRODUCED):
    return next(r for r in section(data, name)["rows"] if r["method"] == method and r["kind"] == kind)


def test_rows_are_ranked_by_each_metric_across_kinds(data):
    amazon = section(data, "amazon-cd")
    assert amazon["headline"] == "ndcg@20" and data["headline"] == {"offline": "ndcg@20", "online": "ctr"}
    ranked = sorted(amazon["rows"], key=lambda r: r["metrics"]["ndcg@20"]["rank"])
    means = [r["metrics"]["ndcg@20"]["mean"] for r in ranked]
    assert means == sorted(means, reverse=True)
    # top and tie have the same mean: both rank 1, and the next row ranks 3.
    assert row(data, "amazon-cd", "top")["metrics"]["ndcg@20"]["rank"] == 1
    assert row(data, "amazon-cd", "tie")["metrics"]["ndcg@20"]["rank"] == 1
    assert row(data, "amazon-cd", "theirs", SUBMITTED)["metrics"]["ndcg@20"]["rank"] == 3
    # The paper's rows are ranked with ours (imrl's printed nDCG@20 on Amazon CD is 7.421 %).
    paper_imrl = row(data, "amazon-cd", "imrl", REPORTED)["metrics"]["ndcg@20"]
    assert paper_imrl["mean"] == pytest.approx(0.07421)
    assert paper_imrl["rank"] == 1 + sum(r["metrics"]["ndcg@20"]["mean"] > 0.07421 for r in amazon["rows"])
    assert section(data, "recsim")["headline"] == "ctr"
    # Every run failed: the row is there, with nothing to rank it by.
    recogym = section(data, "recogym")
    assert recogym["headline"] is None and recogym["metrics"] == []
    assert [(r["method"], r["n_seeds"], r["n_failed"]) for r in recogym["rows"]] == [("imrl", 0, 1)]


def test_interval_is_students_t_over_seeds(data):
    cell = row(data, "amazon-cd", "mid")["metrics"]["ndcg@20"]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(NDCG["mid"]), scale=stats.sem(NDCG["mid"]))
    assert cell["ci"] == pytest.approx([low, high])
    assert row(data, "synthetic", "mid")["metrics"]["ndcg@20"]["ci"] is None            # one seed
    assert row(data, "amazon-cd", "imrl", REPORTED)["metrics"]["ndcg@20"]["ci"] is None  # seeds not given


def test_the_papers_number_sits_beside_ours(data):
    ours = row(data, "amazon-cd", "imrl")["metrics"]
    assert ours["ndcg@20"]["paper"] == pytest.approx({"mean": 0.07421, "std": 0.00231})
    assert ours["recall@20"]["paper"]["mean"] == pytest.approx(0.09213)
    assert "paper" not in row(data, "amazon-cd", "top")["metrics"]["ndcg@20"]          # not in the paper
    assert "paper" not in row(data, "synthetic", "imrl")["metrics"]["ndcg@20"]         # not a paper dataset
    assert "paper" not in row(data, "amazon-cd", "imrl", REPORTED)["metrics"]["ndcg@20"]


def test_mean_rank_over_the_datasets_a_method_ran_on(data):
    overall = data["overall"]["offline"]["ndcg@20"]
    by_method = {entry["method"]: entry for entry in overall}
    assert set(by_method) == {"top", "tie", "mid", "imrl"}                 # reproduced only
    # amazon-cd: top and tie share 1.5, mid 3, imrl 4; synthetic: mid 1, imrl 2, top 3.
    assert by_method["top"]["ranks"] == [{"dataset": "synthetic", "rank": 3.0, "of": 3},
                                         {"dataset": "amazon-cd", "rank": 1.5, "of": 4}]
    assert by_method["top"]["mean_rank"] == pytest.approx(2.25)
    assert by_method["mid"]["mean_rank"] == pytest.approx(2.0) and by_method["mid"]["n"] == 2
    assert by_method["imrl"]["mean_rank"] == pytest.approx(3.0)
    assert (by_method["tie"]["mean_rank"], by_method["tie"]["n"]) == (1.5, 1)
    # Best mean rank first; among equal ones, the method with more datasets.
    assert [entry["method"] for entry in overall] == ["tie", "mid", "top", "imrl"]
    online = data["overall"]["online"]["ctr"]
    assert [entry["method"] for entry in online][0] == "imrl" and {e["n"] for e in online} == {1}


def test_online_rows_carry_figure_2s_curve_thinned_for_the_page(data):
    imrl = row(data, "recsim", "imrl")["curve"]
    assert len(imrl["episode"]) == CURVE_POINTS and imrl["n_seeds"] == 3
    assert imrl["episode"][0] == 10 and imrl["episode"][-1] == 5000      # first and last episode kept
    runs = pd.DataFrame({"method": "imrl", "curve": [{"episode": [10 * (i + 1) for i in range(500)],
                                                      "ctr": learning_curve(0.3, seed, n=500)} for seed in range(3)]})
    band = figures.curve_band(runs)
    at = list(band.episode).index(imrl["episode"][5])
    assert imrl["mean"][5] == pytest.approx(band.mean[at], rel=1e-4)
    assert imrl["std"][5] == pytest.approx(band.std[at], rel=1e-4)
    deers = row(data, "recsim", "deers")["curve"]
    assert deers["std"] == [None, None] and deers["mean"] == [0.1, 0.2]  # one seed: no band
    # Figure 2's styles, in the section's order.
    styles = [r["curve"] for r in section(data, "recsim")["rows"]]
    assert [(c["color"], c["dash"]) for c in styles] == [
        (figures.line_style(i)["color"], {"-": "", "--": "7 4", "-.": "7 3 1.5 3"}[figures.line_style(i)["linestyle"]])
        for i in range(3)]
    assert row(data, "amazon-cd", "top")["curve"] is None


def test_commits_link_to_the_repository_and_methods_to_their_pages(data):
    top = row(data, "amazon-cd", "top")
    assert top["commits"] == [{"sha": SHA, "short": "0123456", "url": f"https://example.org/o/r/commit/{SHA}"}]
    assert row(data, "synthetic", "top")["commits"] == [{"sha": "abc123", "short": "abc123", "url": None}]
    assert commit_link("unknown", "https://example.org/o/r")["url"] is None
    assert commit_link(SHA, None) == {"sha": SHA, "short": "0123456", "url": None}
    assert data["methods"]["imrl"] == {"paper": "IMRL (this paper)", "paper_url": "https://arxiv.org/abs/2209.08228",
                                       "methods_url": "https://example.org/o/r/blob/HEAD/METHODS.md#imrl"}
    assert "top" not in data["methods"] and "theirs" not in data["methods"]
    assert method_links(["sasrec", "random"], None) == {
        "random": {"paper": registry.METHODS["random"].paper, "paper_url": None, "methods_url": None},
        "sasrec": {"paper": registry.METHODS["sasrec"].paper, "paper_url": "https://arxiv.org/abs/1808.09781",
                   "methods_url": "../METHODS.md#sasrec-baselinessasrecpy"}}


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_method_with_a_paper_has_a_section_of_methods_md_and_a_link():
    text = (REPO_ROOT / "METHODS.md").read_text()
    anchors = {github_anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    assert set(SECTIONS.values()) <= anchors
    sanity = {"random", "popularity", "markov"}
    assert set(SECTIONS) == set(PAPERS) == set(registry.METHODS) - sanity
    # The arXiv ids METHODS.md cites for the RL baselines are the ones linked.
    for method in ("deers", "kgrl", "tpgr", "pgpr"):
        line = next(line for line in text.splitlines() if line.startswith(f"| `{method}` |"))
        assert f"arXiv:{PAPERS[method].rsplit('/', 1)[1]}" in line, method


@pytest.mark.parametrize("remote, web", [
    ("https://github.com/owner/repo.git", "https://github.com/owner/repo"),
    ("https://user:secret@gitlab.example.org:8443/group/repo/", "https://gitlab.example.org:8443/group/repo"),
    ("git@github.com:owner/repo.git", "https://github.com/owner/repo"),
    ("ssh://git@github.com:22/owner/repo.git", "https://github.com/owner/repo"),
    ("/srv/git/repo.git", None),
    ("file:///srv/git/repo.git", None),
    ("../repo", None),
    ("javascript:alert(1)", None),
])
def test_web_url_of_a_remote(remote, web):
    assert web_url(remote) == web


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_repository_url_reads_the_remote(tmp_path):
    assert repository_url(tmp_path) is None                              # not a repository
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert repository_url(tmp_path) is None                              # no remote
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "upstream", "git@example.org:a/b.git"], check=True)
    assert repository_url(tmp_path) == "https://example.org/a/b"
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "https://t0ken@example.org/o/r.git"],
                   check=True)
    assert repository_url(tmp_path) == "https://example.org/o/r"         # origin first, no credentials


def test_csv_keeps_one_line_per_row_and_its_columns(data):
    table = pd.read_csv(io.StringIO(leaderboard_csv(data)))
    assert len(table) == sum(len(s["rows"]) for s in data["sections"])
    assert not {"commits", "curve", "device", "ndcg@20_rank", "ndcg@20_ci"} & set(table.columns)
    assert list(table.columns[:6]) == ["dataset", "setting", "kind", "method", "n_seeds", "n_failed"]
    assert table.loc[table["method"] == "top", "commit"].tolist() == ["abc123", SHA]
