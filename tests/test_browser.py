"""The page in a real browser: headless Debian Chromium driven by Playwright, on a phone-sized screen.

Playwright's own browser download cannot work here, so it drives /usr/bin/chromium (CI installs
it through .ci/run). The screenshot goes to results/browser.png.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from bookrbm import paths

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture
def server(sample_file, quick_model_file):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "serve.py", "--port", str(port), "--data", str(sample_file), "--model", str(quick_model_file)],
        cwd=paths.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"serve.py did not start: {process.stderr.read().decode()[-500:]}")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=30)


def add_and_rate(page, query, stars):
    with page.expect_response(lambda response: "/api/books" in response.url and query.split()[-1] in response.url):
        page.fill("#search", query)
    first = page.locator("#results li.result").first
    page.wait_for_function(
        "q => (document.querySelector('#results li.result .title') || {}).textContent?.toLowerCase().includes(q)",
        arg=query.split()[-1],
    )
    title = first.locator(".title").inner_text()
    first.get_by_role("button").click()
    mine = page.locator("#mine li.mine").filter(has_text=title)
    mine.locator(f'.star[data-value="{stars}"]').click()
    assert mine.locator(".star.on").count() == stars
    return title


def test_search_rate_and_get_recommendations(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            page.goto(server)
            assert page.locator("#recommend").is_disabled()
            titles = [add_and_rate(page, "hobbit", 5), add_and_rate(page, "name of the wind", 4),
                      add_and_rate(page, "harry potter", 5)]
            assert page.locator("#mine li.mine").count() == 3
            # the books and their stars outlive a reload (kept in the browser's localStorage)
            page.reload()
            kept = page.locator("#mine li.mine")
            kept.first.wait_for()
            assert [kept.nth(i).locator(".title").inner_text() for i in range(kept.count())] == titles
            assert [kept.nth(i).locator(".star.on").count() for i in range(3)] == [5, 4, 5]
            assert page.locator("#recommend").is_enabled() and page.locator("#count").inner_text() == "(3 of 3 rated)"
            page.click("#recommend")
            cards = page.locator("#recs li.recommendation")
            cards.first.wait_for()
            assert cards.count() == 10
            assert page.locator("#summary").inner_text() == "From your 3 rated books:"
            assert page.locator("#tip").is_visible() and "Rate more books" in page.locator("#tip").inner_text()
            shown = page.locator("#recs").inner_text()
            assert not any(f". {title}\n" in shown for title in titles)  # nothing already read
            assert page.locator("#profile > div").count() >= 2
            # covers: an image where the network allows, the placeholder (initials) where it does not
            covers = page.locator("#recs li.recommendation").locator(".placeholder, img.cover")
            assert covers.count() == 10
            assert page.evaluate("[...document.querySelectorAll('#recs img')].every(i => i.naturalWidth > 0)")
            # fits a phone: nothing wider than the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            os.makedirs(paths.RESULTS, exist_ok=True)
            page.screenshot(path=os.path.join(paths.RESULTS, "browser.png"), full_page=True)
        finally:
            browser.close()


def test_goodreads_upload_on_the_page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 800})
            errors = []
            page.on("pageerror", lambda error: errors.append(error))
            page.goto(server)
            # what another version of the page (or a hand) left in storage does not break it
            page.evaluate("localStorage.setItem('bookrbm.mine', '{not json')")
            page.reload()
            assert page.locator("#mine").inner_text().startswith("Nothing yet") and not errors
            page.evaluate("""localStorage.setItem('bookrbm.mine', JSON.stringify([
                {book: {book_id: 7, title: 'The Hobbit', image_url: 5}, rating: 9}, {book: {title: 'no id'}, rating: 1}, 3]))""")
            page.reload()
            assert page.locator("#mine li.mine").count() == 1 and page.locator("#mine .star.on").count() == 5 and not errors
            page.set_input_files("#upload", os.path.join(paths.BUNDLED_DATA, "example_goodreads_export.csv"))
            page.locator("#recs li.recommendation").first.wait_for()
            summary = page.locator("#summary").inner_text()
            assert summary.startswith("example_goodreads_export.csv: 21 of 22 books found in goodbooks-10k")
            assert "ranking your to-read shelf" in summary
            assert not page.locator("#tip").is_visible()  # an export is a whole library
            assert page.locator("#recs li.recommendation").count() == 8  # the to-read shelf, less what was read
            page.set_input_files("#upload", {"name": "broken.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"})
            page.locator("#error").filter(has_text="missing column").wait_for()
            assert "broken.csv: missing column 'Book Id', 'Title'" in page.locator("#error").inner_text()
        finally:
            browser.close()
