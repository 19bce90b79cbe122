"""The web UI as a person uses it: headless Chromium on the dashboard, the search box and the JP:HSP timeline."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.browser import request_urls

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def wait_for(driver, script: str, timeout: float = 30):
    """Run `script` (a JS expression) until it is truthy; return its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(f"return {script}"))


def chart_marks(driver, slug: str) -> dict:
    """What the Vega chart `slug` drew: SVG paths of its line and point marks, and its axis labels."""
    wait_for(driver, f"document.querySelector('#chart-{slug} svg .mark-symbol path, "
                     f"#chart-{slug} svg .mark-line path')")
    return driver.execute_script(f"""
        const root = document.querySelector('#chart-{slug} svg');
        return {{
            points: root.querySelectorAll('.mark-symbol path').length,
            lines: root.querySelectorAll('.mark-line path').length,
            labels: Array.from(root.querySelectorAll('.role-axis-label text')).map(t => t.textContent),
        }};
    """)


def assert_all_requests_local(urls: list[str]) -> None:
    assert urls, "the performance log recorded no requests"
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS, f"request left 127.0.0.1: {url}"


def test_dashboard_draws_its_charts_without_leaving_the_machine(browser, ui):
    browser.get(f"{ui}/-/dashboards/policy")
    assert "Immigration policy in the news" in browser.title
    for slug in ("visas-per-week", "sectors-per-week", "figure-timeline"):
        marks = chart_marks(browser, slug)
        assert marks["points"] > 0 and marks["lines"] > 0, slug
    rows = wait_for(browser, "document.querySelectorAll('#chart-newest-articles tbody tr').length")
    assert rows > 0
    assert_all_requests_local(request_urls(browser))
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_japans_hsp_timeline_shows_2012_to_2023(browser, ui):
    browser.get(f"{ui}/-/dashboards/policy")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    wait_for(browser, "document.querySelector('select#figure_visa')")
    Select(browser.find_element(By.ID, "figure_visa")).select_by_value("JP:HSP")
    browser.find_element(By.CSS_SELECTOR, ".dashboard-filters input[type=submit]").click()
    wait_for(browser, "location.search.includes('figure_visa=JP%3AHSP')")
    marks = chart_marks(browser, "figure-timeline")
    assert {"2012", "2023"} <= set(marks["labels"])
    assert marks["points"] >= 2
    # The y axis is in SI units ("~s"): 46,946 reads 40k-50k, so the axis reaches past 40k.
    assert any(label.endswith("k") and float(label[:-1]) >= 40 for label in marks["labels"] if label[:-1].isdigit())
    assert_all_requests_local(request_urls(browser))


def test_search_box_filters_the_articles(browser, ui):
    from selenium.webdriver.common.by import By

    browser.get(f"{ui}/monitor/articles")
    total = int(browser.find_element(By.CSS_SELECTOR, "h3").text.split()[0])
    box = browser.find_element(By.CSS_SELECTOR, "input[name=_search]")
    box.send_keys("semiconductor*")
    box.submit()
    wait_for(browser, "location.search.includes('_search=')")
    heading = browser.find_element(By.CSS_SELECTOR, "h3").text
    found = int(heading.split()[0])
    assert 0 < found < total and "semiconductor" in heading
    assert_all_requests_local(request_urls(browser))


def test_search_query_finds_a_two_character_korean_term(browser, ui):
    from selenium.webdriver.common.by import By

    browser.get(f"{ui}/monitor/search")
    box = browser.find_element(By.CSS_SELECTOR, "input[name=q]")
    box.send_keys("비자")
    box.submit()
    wait_for(browser, "location.search.includes('q=')")
    titles = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.col-title")]
    assert titles and all(title for title in titles)
    assert any("비자" in title for title in titles)
