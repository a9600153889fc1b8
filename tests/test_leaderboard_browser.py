"""reports/leaderboard.html in a real headless Chromium (Debian's chromium and
chromedriver, driven by selenium): sorting, switching sections, what the rows say, and
that a submission whose names hold HTML shows as text and runs no script.

Skipped, with the reason, when chromium, chromedriver or selenium is absent; CI
installs them (.ci/run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imrl.report.build import build_reports, leaderboard_report
from tests.crafted_results import offline_record, online_record, write_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("headless browser tests need Debian's chromium and chromium-driver "
                "(apt-get install -y chromium chromium-driver)", allow_module_level=True)
from selenium.webdriver.common.by import By  # noqa: E402

CONFIG = {"name": "browser", "datasets": ["synthetic", "other"], "methods": ["alpha", "beta", "gamma"],
          "simulators": ["recsim"], "online_methods": ["alpha", "beta"], "table_k": 20, "not_available": []}
#: method -> recall@20 per dataset; precision and nDCG follow other orders so that
#: sorting by different columns gives different orders.
RECALL = {"synthetic": {"alpha": 0.30, "beta": 0.10, "gamma": 0.20}, "other": {"alpha": 0.05, "beta": 0.25, "gamma": 0.15}}
#: Seed noise differs by method, so the paired differences vary and can be tested.
NOISE = {"alpha": (0.0, 0.002, -0.001), "beta": (0.001, -0.002, 0.0), "gamma": (-0.001, 0.0, 0.003)}
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>&amp;'


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def build(tmp_path: Path, submissions: dict[str, str] = {}) -> Path:
    runs = tmp_path / "results" / "runs"
    for dataset, recalls in RECALL.items():
        for method, recall in recalls.items():
            for seed, noise in enumerate(NOISE[method]):
                write_record(runs, offline_record(dataset, method, seed, (recall + noise, 0.4 - recall, 0.1)))
    for seed in range(2):
        write_record(runs, online_record("recsim", "alpha", seed, [0.1, 0.2 + seed / 100]))
    shutil.copytree(Path(__file__).resolve().parent.parent / "results" / "reported", tmp_path / "results" / "reported")
    (tmp_path / "results" / "submissions").mkdir()
    for name, text in submissions.items():
        (tmp_path / "results" / "submissions" / name).write_text(text)
    build_reports(runs, tmp_path / "reports", CONFIG, builders=[leaderboard_report])
    return tmp_path / "reports" / "leaderboard.html"


def visible_section(driver):
    return next(s for s in driver.find_elements(By.CSS_SELECTOR, "#sections > section") if s.is_displayed())


def column(section, key: str) -> list[str]:
    return [td.text for td in section.find_elements(By.CSS_SELECTOR, f'tbody td[data-column="{key}"]')]


def test_sort_switch_and_contents(browser, tmp_path):
    page = build(tmp_path)
    browser.get(page.as_uri())

    tabs = [button.text for button in browser.find_elements(By.CSS_SELECTOR, "#tabs > button")]
    assert tabs[:3] == ["synthetic", "other", "recsim"]         # config order first
    section = visible_section(browser)
    assert section.get_attribute("data-name") == "synthetic"
    # Reproduced rows first, in run order; the paper's rows are not shown for synthetic.
    assert column(section, "method") == ["alpha", "beta", "gamma"]
    assert column(section, "kind") == ["reproduced"] * 3
    assert column(section, "n_seeds") == ["3", "3", "3"]
    recall = dict(zip(column(section, "method"), column(section, "recall@20")))
    assert recall["alpha"].startswith("30.033 ± ") and "†" not in recall["alpha"]   # best: bold, no marker
    assert recall["beta"].endswith("†")
    best = section.find_element(By.CSS_SELECTOR, 'tbody td.best[data-column="recall@20"]')
    assert best.text == recall["alpha"]
    assert column(section, "commit") == ["abc123"] * 3 and column(section, "hardware") == ["2 cpu"] * 3

    # Switch to "other" and sort by recall (high first), then again (low first).
    browser.find_element(By.XPATH, '//nav[@id="tabs"]/button[text()="other"]').click()
    section = visible_section(browser)
    assert section.get_attribute("data-name") == "other"
    header = section.find_element(By.CSS_SELECTOR, 'th[data-column="recall@20"]')
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert column(section, "method") == ["beta", "gamma", "alpha"]
    header.click()
    assert column(section, "method") == ["alpha", "gamma", "beta"]
    # Sorting by another metric reorders by it (precision = 0.4 - recall).
    section.find_element(By.CSS_SELECTOR, 'th[data-column="precision@20"]').click()
    assert column(section, "method") == ["alpha", "gamma", "beta"]

    # A dataset of the paper: reported rows are there, labelled and after the reproduced ones.
    browser.find_element(By.XPATH, '//nav[@id="tabs"]/button[text()="amazon-cd"]').click()
    section = visible_section(browser)
    kinds = column(section, "kind")
    assert set(kinds) == {"reported by the paper"} and len(kinds) == 9
    rows = dict(zip(column(section, "method"), column(section, "recall@20")))
    assert rows["imrl"] == "9.213 ± 0.219" and column(section, "n_seeds")[0] == "n/a"
    assert "reported" in section.find_element(By.CSS_SELECTOR, "tbody tr").get_attribute("class")


def test_html_in_a_submission_shows_as_text_and_runs_nothing(browser, tmp_path):
    hostile = offline_record("synthetic", HOSTILE, 0, (0.9, 0.1, 0.1))
    hostile["substitutes"] = ["</script><script>window.__xss=3</script>"]
    hostile["provenance"]["hardware"] = "<b>bold</b>"
    invalid = offline_record("synthetic", "invalid", 0)
    invalid["seed"] = f"{HOSTILE}"     # not an integer: rejected, and the reason quotes the HTML
    page = build(tmp_path, {"hostile.json": json.dumps(hostile), "invalid.json": json.dumps(invalid)})
    assert "<script>window.__xss" not in page.read_text()     # escaped in the embedded JSON
    browser.get(page.as_uri())

    assert browser.execute_script("return window.__xss === undefined")
    section = visible_section(browser)
    methods = column(section, "method")
    assert HOSTILE in methods
    row = methods.index(HOSTILE)
    assert column(section, "kind")[row] == "submitted"
    assert column(section, "substitutes")[row] == "</script><script>window.__xss=3</script>"
    assert column(section, "hardware")[row] == "<b>bold</b>"
    assert not browser.find_elements(By.CSS_SELECTOR, "#sections img, #sections b, #rejected img, #rejected script")
    # The submitted row is not pooled with the reproduced ones and is not tested.
    assert column(section, "kind").count("reproduced") == 3
    assert "†" not in column(section, "recall@20")[row]

    rejected = browser.find_element(By.ID, "rejected")
    assert rejected.is_displayed()
    assert "Rejected submissions (1)" in rejected.text
    assert "invalid.json: seed:" in rejected.text and "window.__xss=1" in rejected.text
    assert browser.execute_script("return window.__xss === undefined")
