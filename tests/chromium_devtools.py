"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a websocket:
one browser, one page, real mouse clicks and key presses, JavaScript evaluated in the page,
screenshots, and every console error and uncaught exception the page raised.

Only what the playground's tests need; no WebDriver, no browser download.
"""

import base64
import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from websockets.sync.client import connect

# /work/shared/NOTES.md's flags: nothing reaches out of the machine, a fresh profile each run.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
]


class PageError(AssertionError):
    """JavaScript evaluated in the page threw, or a wait ran out."""


class Chromium:
    """A headless browser with one page (`width` x `height` CSS pixels)."""

    def __init__(self, width: int = 1200, height: int = 900, start_timeout: float = 60.0):
        binary = shutil.which("chromium")
        assert binary, "chromium is not installed: `make test` installs it (apt-get install chromium)"
        self.profile = tempfile.mkdtemp(prefix="playground-chromium-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")  # pylint: disable=consider-using-with
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self.log,
        )
        self._ids = itertools.count(1)
        self._replies: Dict[int, "queue.Queue"] = {}
        self._lock = threading.Lock()
        self._paused_requests: "queue.Queue" = queue.Queue()
        self.errors: List[str] = []  # uncaught exceptions and console.error calls
        self.log_entries: List[dict] = []  # the browser's own error log (failed loads, CSP, ...)
        self.url_rewrite: Optional[Callable[[str], Optional[str]]] = None
        self.blocked: List[str] = []  # requests url_rewrite refused
        self.socket = connect(self._websocket_url(start_timeout), max_size=None, open_timeout=start_timeout)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._continue_paused_requests, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.page(f"{domain}.enable")
        self.viewport(width, height)

    def _websocket_url(self, timeout: float) -> str:
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            if os.path.exists(port_file):
                lines = open(port_file, encoding="ascii").read().split()  # pylint: disable=consider-using-with
                if len(lines) == 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    # -- the protocol --------------------------------------------------------------------------

    def _read(self) -> None:
        for raw in self.socket:
            message = json.loads(raw)
            if "id" in message:
                with self._lock:
                    reply = self._replies.pop(message["id"], None)
                if reply is not None:
                    reply.put(message)
            else:
                self._event(message.get("method", ""), message.get("params", {}))

    def _event(self, method: str, params: dict) -> None:
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console.error: " + " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.log_entries.append(params["entry"])
        elif method == "Fetch.requestPaused":
            self._paused_requests.put(params)

    def _send(self, method: str, session: Optional[str], params: dict) -> "queue.Queue":
        message_id = next(self._ids)
        reply: "queue.Queue" = queue.Queue()
        with self._lock:
            self._replies[message_id] = reply
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        return reply

    def call(self, method: str, session: Optional[str] = None, timeout: float = 60.0, **params) -> dict:
        reply = self._send(method, session, params).get(timeout=timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def page(self, method: str, **params) -> dict:
        return self.call(method, self.session, **params)

    def _continue_paused_requests(self) -> None:
        """Requests paused by Fetch go on to the URL `url_rewrite` gives (unseen by the page), or
        fail where it gives None (recorded in `blocked`)."""
        while True:
            paused = self._paused_requests.get()
            url = paused["request"]["url"]
            rewritten = self.url_rewrite(url) if self.url_rewrite else url
            if rewritten is None:
                self.blocked.append(url)
                self._send("Fetch.failRequest", self.session, {"requestId": paused["requestId"], "errorReason": "BlockedByClient"})
            else:
                self._send("Fetch.continueRequest", self.session, {"requestId": paused["requestId"], "url": rewritten})

    # -- what tests do ---------------------------------------------------------------------------

    def goto(self, url: str, ready: str = "document.body && document.body.dataset.ready === 'true'", timeout: float = 60.0):
        self.js("document.body && (document.body.dataset.ready = 'navigating')")  # not the old page's mark
        self.page("Page.navigate", url=url)
        if ready:
            self.wait(ready, timeout)

    def js(self, expression: str, timeout: float = 60.0) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", self.session, timeout, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise PageError(f"{expression[:200]!r} threw: {details.get('exception', {}).get('description') or details.get('text')}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 60.0, interval: float = 0.05) -> Any:
        """Poll `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise PageError(f"timed out after {timeout} s waiting for {expression!r} (last value {value!r})")
            time.sleep(interval)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the middle of the element."""
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        if box is None:
            raise PageError(f"no element matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def fill(self, selector: str, text: str) -> None:
        """Focus a field, clear it, and type `text` into it (input events, as a user's typing)."""
        self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.value = '';"
            " e.dispatchEvent(new Event('input', {bubbles: true})); })()"
        )
        if text:
            self.page("Input.insertText", text=text)

    def press(self, key: str, code: Optional[str] = None, key_code: int = 0, modifiers: int = 0) -> None:
        """A key pressed and released on the focused element (Enter, ArrowRight, Tab, ...)."""
        text = "\r" if key == "Enter" else None
        for kind in ("keyDown", "keyUp"):
            params = {"type": kind, "key": key, "code": code or key, "windowsVirtualKeyCode": key_code, "modifiers": modifiers}
            if text and kind == "keyDown":
                params["text"] = text
            self.page("Input.dispatchKeyEvent", **params)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)

    def color_scheme(self, scheme: str) -> None:
        self.page("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}])

    def rewrite_urls(self, pattern: str, rewrite: Optional[Callable[[str], Optional[str]]]) -> None:
        """Send requests matching `pattern` to `rewrite(url)` (or fail them where it gives None),
        as a proxy in front would; `rewrite=None` stops."""
        self.url_rewrite = rewrite
        if rewrite is None:
            self.page("Fetch.disable")
        else:
            self.page("Fetch.enable", patterns=[{"urlPattern": pattern}])

    def screenshot(self, path: str, full_page: bool = False) -> None:
        """The viewport (or the whole page) as a PNG."""
        data = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)["data"]
        with open(path, "wb") as image:
            image.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)
