"""reports/leaderboard.html in a real headless Chromium (Debian's chromium and
chromedriver, driven by selenium): ranking, switching tabs and the headline metric,
expanding a row, sorting with the keyboard, the online curves, the cross-dataset mean
ranks, no horizontal scrolling at 1366 px and 390 px (with screenshots, left in the
test's tmp_path: run with --basetemp to keep them), print, and that a submission whose
names hold HTML shows as text and runs no script.

Skipped, with the reason, when chromium, chromedriver or selenium is absent; CI
installs them (.ci/run)."""

from __future__ import annotations

import base64
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
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

CONFIG = {"name": "browser", "datasets": ["synthetic", "other"], "methods": ["alpha", "beta", "gamma"],
          "simulators": ["recsim", "recogym"], "online_methods": ["alpha", "beta", "gamma"], "seeds": [0, 1, 2], "table_k": 20,
          "not_available": []}
#: method -> (recall@20, nDCG@20) per dataset, so that the two metrics rank differently:
#: by nDCG@20 (the headline) synthetic is beta, gamma, alpha and other gamma, alpha, beta.
METRICS = {"synthetic": {"alpha": (0.30, 0.12), "beta": (0.10, 0.18), "gamma": (0.20, 0.15)},
           "other": {"alpha": (0.05, 0.16), "beta": (0.25, 0.10), "gamma": (0.15, 0.20)}}
#: Seed noise differs by method, so the paired differences vary and can be tested.
NOISE = {"alpha": (0.0, 0.002, -0.001), "beta": (0.001, -0.002, 0.0), "gamma": (-0.001, 0.0, 0.003)}
SHA = "0123456789abcdef0123456789abcdef01234567"
#: CTR curves on recsim: alpha and beta with two seeds (a band), gamma with one (none).
CURVES = {"alpha": [[0.1, 0.2, 0.3], [0.1, 0.22, 0.32]], "beta": [[0.1, 0.15, 0.2], [0.12, 0.15, 0.18]],
          "gamma": [[0.05, 0.1, 0.25]]}
LONG_NAME = "a-submitted-method-whose-name-is-one-long-word-without-any-place-to-break-it"
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


@pytest.fixture
def viewport(browser):
    """Sets the page's size (and phone emulation below 600 px); restores print media and
    the desktop size afterwards."""
    def resize(width: int, height: int) -> None:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    resize(1366, 768)
    yield resize
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    resize(1366, 768)


def build(tmp_path: Path, submissions: dict[str, str] = {}) -> Path:
    runs = tmp_path / "results" / "runs"
    for dataset, methods in METRICS.items():
        for method, (recall, ndcg) in methods.items():
            for seed, noise in enumerate(NOISE[method]):
                record = offline_record(dataset, method, seed, (recall + noise, 0.4 - recall, ndcg + noise))
                record["metrics"]["test"].update({"recall@10": recall / 2, "ndcg@10": ndcg / 2})
                record["provenance"]["git_commit"] = SHA
                write_record(runs, record)
    for method, curves in CURVES.items():
        for seed, ctr in enumerate(curves):
            write_record(runs, online_record("recsim", method, seed, ctr))
    write_record(runs, online_record("recogym", "alpha", 0, [], status="failed"))   # nothing to rank by
    shutil.copytree(Path(__file__).resolve().parent.parent / "results" / "reported", tmp_path / "results" / "reported")
    (tmp_path / "results" / "submissions").mkdir()
    for name, text in submissions.items():
        (tmp_path / "results" / "submissions" / name).write_text(text)
    build_reports(runs, tmp_path / "reports", CONFIG, builders=[leaderboard_report])
    return tmp_path / "reports" / "leaderboard.html"


@pytest.fixture
def page(tmp_path) -> Path:
    long = offline_record("synthetic", LONG_NAME, 0, (0.2, 0.2, 0.17))
    return build(tmp_path, {"long.json": json.dumps(long)})


def visible_section(driver):
    return next(s for s in driver.find_elements(By.CSS_SELECTOR, "#sections > section") if s.is_displayed())


def open_tab(driver, label: str):
    driver.find_element(By.XPATH, f'//nav[@id="tabs"]//button[text()="{label}"]').click()
    return visible_section(driver)


def column(section, key: str) -> list[str]:
    cells = section.find_elements(By.CSS_SELECTOR, f'table.board > tbody > tr.entry > td[data-column="{key}"]')
    return [td.text for td in cells]


def methods(section) -> list[str]:
    return [name.text for name in section.find_elements(By.CSS_SELECTOR, 'tr.entry td[data-column="method"] .name')]


def entry(section, method: str, kind: str = "reproduced"):
    return next(tr for tr in section.find_elements(By.CSS_SELECTOR, "tr.entry")
                if tr.find_element(By.CSS_SELECTOR, ".name").text == method
                and tr.find_element(By.CSS_SELECTOR, 'td[data-column="kind"]').text == kind)


def test_ranking_tabs_and_a_chart_for_every_row(browser, viewport, page):
    browser.get(page.as_uri())
    tabs = [button.text for button in browser.find_elements(By.CSS_SELECTOR, "#tabs button")]
    assert tabs[:2] == ["synthetic", "other"] and tabs[-3:] == ["recsim", "recogym", "Overall"]   # config order
    section = visible_section(browser)
    assert section.get_attribute("data-name") == "synthetic"
    # Ranked by nDCG@20: beta, the long-named submission (one seed, 17.0 %), gamma, alpha.
    assert methods(section) == ["beta", LONG_NAME, "gamma", "alpha"]
    assert column(section, "rank") == ["1", "2", "3", "4"]
    assert column(section, "kind") == ["reproduced", "submitted", "reproduced", "reproduced"]
    value = dict(zip(methods(section), column(section, "value")))
    assert value["beta"].startswith("17.967 ± ") and "†" not in value["beta"]   # best: bold, no marker
    assert "95% [" in value["beta"] and value["alpha"].splitlines()[0].endswith("†")
    assert value[LONG_NAME] == "17.000"                                         # one seed: no std, no interval
    assert section.find_element(By.CSS_SELECTOR, "td.value.best").text == value["beta"]
    assert section.find_element(By.CSS_SELECTOR, 'th[data-column="value"]').text.startswith("nDCG@20 (%)")
    # One chart per row: an interval and a mean dot for the rows with seeds to spare.
    charts = section.find_elements(By.CSS_SELECTOR, "tr.entry svg.chart")
    assert len(charts) == 4 and all(chart.size["width"] > 50 for chart in charts)
    assert [len(chart.find_elements(By.CSS_SELECTOR, "line.ci")) for chart in charts] == [3, 0, 3, 3]
    assert all(len(chart.find_elements(By.CSS_SELECTOR, "circle.mean")) == 1 for chart in charts)
    assert "95% interval" in charts[0].get_attribute("aria-label")

    section = open_tab(browser, "other")
    assert section.get_attribute("data-name") == "other"
    assert methods(section) == ["gamma", "alpha", "beta"]

    # A simulator where every run failed: the row shows, with no number and an empty chart.
    section = open_tab(browser, "recogym")
    assert methods(section) == ["alpha"] and column(section, "value") == ["–"] and column(section, "rank") == ["–"]
    assert section.find_element(By.CSS_SELECTOR, "svg.chart").get_attribute("aria-label") == "No value"
    assert section.find_element(By.CSS_SELECTOR, ".summary").text == "No numbers: every run failed (1 reproduced)."

    # A dataset of the paper: the paper's rows, ranked, each with a hollow diamond.
    section = open_tab(browser, "amazon-cd")
    assert set(column(section, "kind")) == {"reported"} and len(methods(section)) == 9
    assert column(section, "rank") == [str(i) for i in range(1, 10)]
    imrl = entry(section, "imrl", "reported")
    assert imrl.find_element(By.CSS_SELECTOR, 'td[data-column="value"]').text == "7.421 ± 0.231"
    assert imrl.find_element(By.CSS_SELECTOR, "svg.chart svg.diamond")
    assert "kind-reported" in imrl.get_attribute("class")
    # Method names link to METHODS.md and to the paper.
    name = imrl.find_element(By.CSS_SELECTOR, "a.name")
    assert name.get_attribute("href").endswith("METHODS.md#imrl")
    assert imrl.find_element(By.CSS_SELECTOR, "a.paper").get_attribute("href") == "https://arxiv.org/abs/2209.08228"
    assert entry(section, "sasrec", "reported").find_element(By.CSS_SELECTOR, "a.name").get_attribute(
        "href").endswith("METHODS.md#sasrec-baselinessasrecpy")


def test_switching_the_headline_metric_reranks_every_view(browser, viewport, page):
    browser.get(page.as_uri())
    select = Select(browser.find_element(By.ID, "headline"))
    assert select.first_selected_option.get_attribute("value") == "ndcg@20"
    assert [o.get_attribute("value") for o in select.options] == [
        "recall@10", "ndcg@10", "recall@20", "precision@20", "ndcg@20"]
    select.select_by_value("recall@20")
    section = visible_section(browser)
    assert methods(section) == ["alpha", "gamma", LONG_NAME, "beta"]
    assert section.find_element(By.CSS_SELECTOR, 'th[data-column="value"]').text.startswith("Recall@20 (%)")
    assert "Ranked by Recall@20 (%)" in section.find_element(By.CSS_SELECTOR, ".summary").text
    section = open_tab(browser, "other")
    assert methods(section) == ["beta", "gamma", "alpha"]
    overall = open_tab(browser, "Overall")
    assert "Offline datasets, by Recall@20 (%)" in overall.text
    # The simulator keeps its final CTR, and its tab has no offline metric to pick.
    section = open_tab(browser, "recsim")
    assert section.find_element(By.CSS_SELECTOR, 'th[data-column="value"]').text.startswith("Final CTR")
    assert not browser.find_element(By.ID, "toolbar").is_displayed()


def test_expanding_a_row_shows_every_metric_and_the_provenance(browser, viewport, page):
    browser.get(page.as_uri())
    section = visible_section(browser)
    row = entry(section, "gamma")
    toggle = row.find_element(By.CSS_SELECTOR, "button.toggle")
    details = section.find_element(By.ID, toggle.get_attribute("aria-controls"))
    assert not details.is_displayed() and toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert details.is_displayed() and toggle.get_attribute("aria-expanded") == "true"
    text = details.text
    for label in ("Recall@10 (%)", "nDCG@10 (%)", "Recall@20 (%)", "Precision@20 (%)", "nDCG@20 (%)"):
        assert label in text, label
    assert "Seeds\n3 ok" in text and "Config hash\ncfg0" in text and "Hardware\n2 cpu" in text
    assert "Device\ncpu" in text and "Wall time / seed\n1.5 s" in text
    commit = details.find_element(By.CSS_SELECTOR, "dd [title]")
    assert commit.text == "0123456" and commit.get_attribute("title") == SHA
    # Sorting redraws the rows; the open one stays open. The keyboard closes it.
    section.find_element(By.CSS_SELECTOR, 'th[data-column="method"] button').click()
    assert methods(section) == [LONG_NAME, "alpha", "beta", "gamma"]
    toggle = entry(section, "gamma").find_element(By.CSS_SELECTOR, "button.toggle")
    details = section.find_element(By.ID, toggle.get_attribute("aria-controls"))
    assert details.is_displayed() and toggle.get_attribute("aria-expanded") == "true"
    toggle.send_keys(Keys.ENTER)
    assert not details.is_displayed() and toggle.get_attribute("aria-expanded") == "false"


def test_keyboard_sorting(browser, viewport, page):
    browser.get(page.as_uri())
    section = open_tab(browser, "other")
    header = section.find_element(By.CSS_SELECTOR, 'th[data-column="value"]')
    button = header.find_element(By.CSS_SELECTOR, "button.sort")
    button.send_keys(Keys.ENTER)                 # first press: highest first
    assert header.get_attribute("aria-sort") == "descending"
    assert methods(section) == ["gamma", "alpha", "beta"]
    assert browser.switch_to.active_element == button   # the focus stays on the header
    button.send_keys(Keys.SPACE)                 # again: lowest first
    assert header.get_attribute("aria-sort") == "ascending"
    assert methods(section) == ["beta", "alpha", "gamma"]
    # Tab moves on to the next header; Enter sorts by it (names A to Z).
    browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    method = section.find_element(By.CSS_SELECTOR, 'th[data-column="method"]')
    assert browser.switch_to.active_element == method.find_element(By.CSS_SELECTOR, "button")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert method.get_attribute("aria-sort") == "ascending" and header.get_attribute("aria-sort") == "none"
    assert methods(section) == ["alpha", "beta", "gamma"]


def test_online_tab_draws_the_learning_curves_with_bands(browser, viewport, page):
    browser.get(page.as_uri())
    section = open_tab(browser, "recsim")
    plot = section.find_element(By.CSS_SELECTOR, "figure.curves svg.curves-svg")
    assert plot.size["width"] > 600
    lines = plot.find_elements(By.CSS_SELECTOR, "path.curve")
    assert sorted(line.get_attribute("data-method") for line in lines) == ["alpha", "beta", "gamma"]
    assert len({line.get_attribute("stroke") for line in lines}) == 3
    assert len(plot.find_elements(By.CSS_SELECTOR, "path.band")) == 2      # gamma has one seed: no band
    legend = section.find_element(By.CSS_SELECTOR, "ul.curve-legend").text
    assert "alpha · 2 seeds" in legend and "gamma · 1 seed" in legend
    # The final-CTR table below it, ranked by the last CTR.
    assert methods(section) == ["alpha", "gamma", "beta"]
    assert column(section, "value")[0].startswith("0.3100 ± 0.0141")


def test_overall_view_gives_each_methods_mean_rank(browser, viewport, page):
    browser.get(page.as_uri())
    overall = open_tab(browser, "Overall")
    offline = overall.find_element(By.CSS_SELECTOR, 'table[data-setting="offline"]')
    # nDCG@20 ranks: synthetic beta 1, gamma 2, alpha 3; other gamma 1, alpha 2, beta 3.
    assert methods(offline) == ["gamma", "beta", "alpha"]
    assert column(offline, "mean-rank") == ["1.50", "2.00", "2.50"]
    assert "2 datasets: synthetic 2/3 · other 1/3" in column(offline, "method")[0]
    assert len(offline.find_elements(By.CSS_SELECTOR, "svg.chart")) == 3
    online = overall.find_element(By.CSS_SELECTOR, 'table[data-setting="online"]')
    assert methods(online) == ["alpha", "gamma", "beta"] and column(online, "mean-rank") == ["1.00", "2.00", "3.00"]
    # Recall@20 ranks: alpha 1 and 3, beta 3 and 1, gamma 2 and 2: a three-way tie.
    Select(browser.find_element(By.ID, "headline")).select_by_value("recall@20")
    offline = overall.find_element(By.CSS_SELECTOR, 'table[data-setting="offline"]')
    assert column(offline, "mean-rank") == ["2.00"] * 3


@pytest.mark.parametrize("width, height", [(1366, 768), (390, 844)])
def test_no_horizontal_scrolling(browser, viewport, page, tmp_path, width, height):
    viewport(width, height)
    browser.get(page.as_uri())
    for label in ("synthetic", "amazon-cd", "recsim", "Overall"):
        section = open_tab(browser, label)
        for toggle in section.find_elements(By.CSS_SELECTOR, "button.toggle")[:2]:
            toggle.click()                       # open details must fit too
        widths = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth, Math.max("
            "...[...arguments[0].querySelectorAll('table.board')].map(t => t.getBoundingClientRect().right))]",
            section)
        assert widths[0] <= widths[1] and widths[2] <= widths[1], (label, widths)
        # Nor does anything spill out of its cell (a long name wraps instead).
        spilled = browser.execute_script(
            "return [...arguments[0].querySelectorAll('table.board td')]"
            ".filter(td => td.offsetParent && td.scrollWidth > td.clientWidth + 1).map(td => td.textContent)", section)
        assert spilled == [], (label, spilled)
        if label in ("synthetic", "recsim"):
            shot = tmp_path / f"leaderboard-{label}-{width}.png"
            browser.save_screenshot(str(shot))
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # At phone width the kind column gives way to a badge beside the name.
    section = open_tab(browser, "synthetic")
    badge = section.find_element(By.CSS_SELECTOR, "tr.entry .kind-inline")
    assert badge.is_displayed() == (width < 640)


def test_print_shows_every_section_without_the_controls(browser, viewport, page, tmp_path):
    browser.get(page.as_uri())
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    sections = browser.find_elements(By.CSS_SELECTOR, "#sections > section")
    assert len(sections) > 4 and all(section.is_displayed() for section in sections)
    assert not browser.find_element(By.ID, "tabs").is_displayed()
    assert not any(toggle.is_displayed() for toggle in browser.find_elements(By.CSS_SELECTOR, "button.toggle"))
    pdf = browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
    assert base64.b64decode(pdf["data"])[:5] == b"%PDF-"


def test_html_in_a_submission_shows_as_text_and_runs_nothing(browser, viewport, tmp_path):
    hostile = offline_record("synthetic", HOSTILE, 0, (0.9, 0.1, 0.9))
    hostile["substitutes"] = ["</script><script>window.__xss=3</script>"]
    hostile["provenance"]["hardware"] = "<b>bold</b>"
    hostile["provenance"]["git_commit"] = 'javascript:window.__xss=4"><img src=x onerror="window.__xss=5">'
    proto = offline_record("synthetic", "__proto__", 0, (0.5, 0.1, 0.5))
    invalid = offline_record("synthetic", "invalid", 0)
    invalid["seed"] = f"{HOSTILE}"     # not an integer: rejected, and the reason quotes the HTML
    page = build(tmp_path, {"hostile.json": json.dumps(hostile), "proto.json": json.dumps(proto),
                            "invalid.json": json.dumps(invalid)})
    assert "<script>window.__xss" not in page.read_text()     # escaped in the embedded JSON
    browser.get(page.as_uri())

    assert browser.execute_script("return window.__xss === undefined")
    section = visible_section(browser)
    assert methods(section)[:2] == [HOSTILE, "__proto__"]     # ranked first and second by nDCG@20
    row = entry(section, HOSTILE, "submitted")
    assert not row.find_elements(By.CSS_SELECTOR, "a")        # no links for an unknown method
    row.find_element(By.CSS_SELECTOR, "button.toggle").click()
    details = section.find_element(By.CSS_SELECTOR, "tr.details:not([hidden])").text
    assert "Substitutes\n</script><script>window.__xss=3</script>" in details
    assert "Hardware\n<b>bold</b>" in details and "javascript:window.__xss=4" in details
    assert not browser.find_elements(By.CSS_SELECTOR, "#sections img, #sections b, #rejected img, #rejected script")
    assert not browser.find_elements(By.CSS_SELECTOR, '#sections a[href^="javascript"]')
    # The submitted row is not pooled with the reproduced ones and is not tested.
    assert column(section, "kind").count("reproduced") == 3
    assert "†" not in dict(zip(methods(section), column(section, "value")))[HOSTILE]

    rejected = browser.find_element(By.ID, "rejected")
    assert rejected.is_displayed()
    assert "Rejected files (1)" in rejected.text
    assert "invalid.json: seed:" in rejected.text and "window.__xss=1" in rejected.text
    assert browser.execute_script("return window.__xss === undefined")
