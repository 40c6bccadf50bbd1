"""
Headless Chromium driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``),
with the standard library only: open a page from disk, run JavaScript in it, read what its
console reported, take a screenshot. The report tests, the report benchmark and
``tools/screenshot_report.py`` use it to check ``report.html`` in a real browser; it lives beside
the benchmarks, outside the installed package, since trashpole itself never opens a browser.

    with HeadlessChromium() as browser:
        page = browser.open("output/demo/eval/test/report.html#images")
        page.evaluate("document.title")
        page.screenshot("report.png")
        assert not page.errors()
"""

import base64
import fcntl
import json
import logging
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

logger = logging.getLogger(__name__)

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Without these flags a machine with no network waits on DNS lookups, updates and sync.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)
# Chromium reads commands from fd 3 and writes replies to fd 4 (--remote-debugging-pipe).
_CMD_FD, _REPLY_FD = 3, 4


def find_chromium() -> Optional[str]:
    """
    The Chromium binary: ``$CHROMIUM`` when set (None if that is not an executable), else the
    first of :data:`CHROMIUM_CANDIDATES` on ``PATH``, else None.
    """
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    """Chromium did not start, died, or answered a command with an error."""


class HeadlessChromium:
    """
    One headless Chromium process with a fresh profile, ended on ``close`` (or leaving a
    ``with`` block).
    """

    def __init__(
        self,
        binary: Optional[str] = None,
        width: int = 1280,
        height: int = 900,
        timeout: float = 60.0,
    ):
        """
        Args:
            binary: the Chromium executable (default: :func:`find_chromium`).
            width, height: size of the pages' viewport, CSS pixels.
            timeout: seconds to wait for any one reply or event.
        """
        binary = binary or find_chromium()
        if not binary:
            raise BrowserError(
                "no Chromium found: install it (Debian: apt-get install -y chromium) or set "
                "$CHROMIUM to its path"
            )
        self.timeout = timeout
        self.viewport = (width, height)
        self._profile = tempfile.mkdtemp(prefix="trashpole-chromium-")
        self._buffer = b""
        self._next_id = 0
        self._events: List[dict] = []
        self._stderr = tempfile.TemporaryFile()  # Chromium's messages, shown if it dies
        cmd_read, self._cmd_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        # Chromium needs the pipe ends at exactly fds 3 and 4; move them out of the way first so
        # that placing one cannot overwrite the other.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (cmd_read, reply_write)]
        os.close(cmd_read)
        os.close(reply_write)

        def place_pipe_ends():
            os.dup2(high[0], _CMD_FD)
            os.dup2(high[1], _REPLY_FD)
            for fd in high:
                os.close(fd)

        args = [binary, *CHROMIUM_FLAGS, f"--window-size={width},{height}"]
        args += [f"--user-data-dir={self._profile}", "--remote-debugging-pipe", "about:blank"]
        # close_fds would close fds 3 and 4 after place_pipe_ends; Python's own fds are not
        # inheritable, so nothing else leaks into the child
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            close_fds=False,
            preexec_fn=place_pipe_ends,
        )
        for fd in high:
            os.close(fd)
        try:
            self.version = self.call("Browser.getVersion")["product"]
        except Exception:
            self.close()
            raise

    def __enter__(self) -> "HeadlessChromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, method: str, params: Optional[dict], session: Optional[str]) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise self._died() from None
        return self._next_id

    def _died(self) -> BrowserError:
        """The error for a Chromium that closed its pipe: exit code and its last messages."""
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace")[-2000:]
        return BrowserError(f"Chromium exited (code {self._process.poll()}): {tail}")

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready = select.select([self._reply_read], [], [], max(left, 0.0))[0]
            if not ready:
                raise BrowserError(f"Chromium did not answer within {self.timeout:g} s")
            chunk = os.read(self._reply_read, 1 << 20)
            if not chunk:
                raise self._died()
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: Optional[dict] = None, session: Optional[str] = None):
        """
        Send one DevTools command and wait for its reply; events that arrive meanwhile are kept.

        Returns:
            the command's ``result`` dict.
        """
        sent = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == sent:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)

    def wait_event(self, method: str, session: Optional[str] = None) -> dict:
        """The first kept or next event named ``method`` (of ``session``); removes it."""
        deadline = time.monotonic() + self.timeout
        while True:
            for k, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    return self._events.pop(k)
            message = self._receive(deadline)
            if "method" in message:
                self._events.append(message)

    def events(self, session: Optional[str] = None) -> List[dict]:
        """Kept events of ``session``, oldest first, after reading what has already arrived."""
        try:
            while True:
                self._receive(time.monotonic())
        except BrowserError:
            pass
        return [e for e in self._events if e.get("sessionId") == session]

    def discard_events(self, session: Optional[str]) -> None:
        """Forget the kept events of ``session`` (a closed tab's)."""
        self._events = [e for e in self._events if e.get("sessionId") != session]

    def open(self, path_or_url: str, wait_for: Optional[str] = None) -> "Page":
        """
        Open a page in a new tab and wait for its load event.

        Args:
            path_or_url: a file path (a ``#fragment`` is kept) or a URL.
            wait_for: optional JavaScript expression polled until it is truthy after loading
                (e.g. the page's own "ready" flag).

        Returns:
            the :class:`Page`, with ``load_s`` the seconds from navigation to the load event.
        """
        url = path_or_url
        if "://" not in url:
            path, _, fragment = url.partition("#")
            url = Path(path).resolve().as_uri() + (f"#{fragment}" if fragment else "")
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, session["sessionId"], target)
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        # the window size includes the (invisible) browser frame; fix the page's viewport
        width, height = self.viewport
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        start = time.monotonic()
        page.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired", page.session)
        page.load_s = time.monotonic() - start
        if wait_for:
            page.wait_until(wait_for)
        return page

    def close(self) -> None:
        """End Chromium (politely, then by force) and remove its profile."""
        if self._process.poll() is None:
            try:
                self._send("Browser.close", None, None)
                self._process.wait(timeout=10)
            except (OSError, BrowserError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for fd in (self._cmd_write, self._reply_read):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One tab of a :class:`HeadlessChromium`."""

    def __init__(self, browser: HeadlessChromium, session: str, target: str):
        self.browser = browser
        self.session = session
        self.target = target
        self.load_s = float("nan")

    def call(self, method: str, params: Optional[dict] = None) -> dict:
        """A DevTools command in this tab's session."""
        return self.browser.call(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        """
        Run JavaScript in the page (a returned promise is awaited) and return its value, which
        must be JSON-serializable. A thrown exception raises :class:`BrowserError`.
        """
        reply = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error in {expression[:80]!r}: {text}")
        return reply["result"].get("value")

    def wait_until(self, expression: str, timeout: Optional[float] = None) -> Any:
        """Poll ``expression`` every 50 ms until it is truthy; returns its value."""
        timeout = timeout or self.browser.timeout
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"{expression!r} still false after {timeout:g} s; page errors: {self.errors()}"
                )
            time.sleep(0.05)

    def wait_for_visible_images(self) -> int:
        """Wait until every picture in the viewport has loaded (lazy ones start when shown);
        returns how many there are."""
        return self.evaluate("""Promise.all(Array.from(document.images).filter(function (img) {
                var r = img.getBoundingClientRect();
                return r.width > 0 && r.bottom > 0 && r.top < innerHeight;
            }).map(function (img) { return img.decode().catch(function () {}); }))
            .then(function (done) { return done.length; })""")

    def press(self, key: str) -> None:
        """Press and release one key (``"j"``, ``"ArrowRight"``, ``"Enter"``, ``"Escape"``)."""
        base = {"key": key, "code": key if len(key) > 1 else f"Key{key.upper()}"}
        if len(key) == 1:
            base["text"] = key
        self.call("Input.dispatchKeyEvent", {"type": "keyDown", **base})
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def screenshot(self, path: str, full_page: bool = False) -> None:
        """Save a PNG of the viewport (or of the whole page) to ``path``."""
        params: Dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        data = self.call("Page.captureScreenshot", params)["data"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        """Close the tab and forget its events."""
        self.browser.call("Target.closeTarget", {"targetId": self.target})
        self.browser.discard_events(self.session)

    def errors(self) -> List[str]:
        """
        What the page reported as an error so far: uncaught exceptions, ``console.error``
        calls and the browser's own error log entries (e.g. a picture that failed to load).
        """
        found = []
        for event in self.browser.events(self.session):
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details["text"])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                )
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                found.append(f"{entry.get('text')} ({entry.get('url', '')})")
        return found
