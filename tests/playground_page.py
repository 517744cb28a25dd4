"""The playground as a user drives it, in the shared headless browser (tests/test_playground.py):
links, clicks, typing, and what the page shows; and the API's answer to the same request."""

import json
import os
import tempfile
from urllib.parse import urlencode

import requests

from chromium_devtools import Chromium
from conftest import REPO_ROOT

SCREEN = (1200, 800)
# Screenshots land in docs/ (the committed ones README and docs/playground.md show) only when
# asked, so a test run leaves the checkout as it was; otherwise in a temp dir, taken all the same.
SCREENSHOTS_DIR = os.path.join(REPO_ROOT, "docs") if os.environ.get("UPDATE_SCREENSHOTS") == "1" else None


def api(runtime, route, body):
    """The API's answer to the request the page makes (status, JSON)."""
    response = requests.post(f"{runtime.http_url}/api/v1/task/{route}", json=body, timeout=60)
    return response.status_code, response.json()


def link(**state) -> str:
    """A shareable link's query: parameters by their API names, lists as repeated keys."""
    return urlencode(state, doseq=True)


class Playground:
    """The page in the shared browser, as a user drives it."""

    def __init__(self, browser: Chromium, url: str):
        self.browser, self.url = browser, url
        self.http_errors_expected = False
        self.scratch_dir = tempfile.mkdtemp(prefix="playground-screenshots-")

    def open(self, query: str = "", url: str = None):
        self.browser.goto(f"{url or self.url}/?{query}")

    def runs(self, tab: str) -> int:
        return self.browser.js(f"Number(document.getElementById('panel-{tab}').dataset.runs || 0)")

    def finish(self, tab: str, action, navigates: bool = False, timeout: float = 60.0):
        """Do `action` (a click; with `navigates`, opening a page) and wait until the tab's run ends."""
        before = 0 if navigates else self.runs(tab)
        action()
        self.browser.wait(f"Number(document.getElementById('panel-{tab}').dataset.runs || 0) > {before}", timeout)

    def run_link(self, tab: str, url: str = None, **state):
        self.finish(tab, lambda: self.open(link(**state, run=1), url), navigates=True)

    def submit(self, tab: str):
        self.finish(tab, lambda: self.browser.click(f"#{tab}-form button[type=submit]"))

    def fill(self, selector: str, text: str):
        """Type into a field, opening its collapsed section first (as a user would)."""
        if self.browser.js(f"!!document.querySelector({json.dumps(selector)}).closest('details:not([open])')"):
            self.browser.click(f"details:not([open]):has({selector}) > summary")
        self.browser.fill(selector, text)

    def choose(self, selector: str, value: str):
        """Pick an option of a <select> (a native popup is not clickable headless)."""
        self.browser.js(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)}); s.value = {json.dumps(value)};"
            " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def error(self, tab: str) -> str:
        return self.browser.js(f"(() => {{ const e = document.querySelector('#{tab}-form .error'); return e.hidden ? '' : e.textContent; }})()")

    def texts(self, selector: str) -> list:
        return self.browser.js(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)")

    def share_link(self, tab: str) -> str:
        return self.browser.js(f"document.querySelector('#panel-{tab} a.share').href")

    def screenshot(self, name: str):
        self.browser.viewport(*SCREEN)
        self.browser.js("window.scrollTo(0, 0)")
        directory = SCREENSHOTS_DIR or self.scratch_dir
        path = os.path.join(directory, f"playground-{name}.png")
        self.browser.screenshot(path)
        assert os.path.getsize(path) > 1000, f"the {name} screenshot is empty"
