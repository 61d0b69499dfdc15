"""A small client of Chromium's DevTools protocol: launch headless Chromium, drive one page
(navigate, type, click, press keys, evaluate), collect the page's exceptions and console errors.

Chromium is Debian's package (scripts/bootstrap.sh browser); a missing one fails the test."""

import json
import os
import shutil
import subprocess
import time
import urllib.request

import websocket

# Longest wait for Chromium to start, or for a condition in the page.
START_TIMEOUT_S = 20
WAIT_TIMEOUT_S = 20


class Browser:
    """Headless Chromium with its DevTools endpoint on a free port."""

    def __init__(self, profile_dir):
        chromium = os.environ.get("EDGEVOTE_CHROMIUM", "chromium")
        if shutil.which(chromium) is None:
            raise RuntimeError(f"{chromium} not found: run scripts/bootstrap.sh browser")
        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-allow-origins=*",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile_dir}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = os.path.join(profile_dir, "DevToolsActivePort")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        self.port = int(open(port_file).read().split()[0])

    def page(self):
        """The first page target, as a Page."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        target = next(t for t in targets if t["type"] == "page")
        return Page(target["webSocketDebuggerUrl"])

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Page:
    """One page, driven over its DevTools websocket."""

    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.problems = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method, **params):
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self._note(message)

    def _note(self, event):
        """Keeps what means the page broke: exceptions, console errors, CSP violations."""
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.problems.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            # A 4xx the page asked for and handled (a refused vote, a vote id a log does not
            # list) is logged by the network source: not a problem of the page.
            if params["entry"].get("source") != "network":
                self.problems.append(params["entry"]["text"])

    def eval(self, expression):
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what, timeout=WAIT_TIMEOUT_S):
        """Polls `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def goto(self, url):
        self.send("Page.navigate", url=url)
        time.sleep(0.05)
        self.wait_for(
            "document.readyState === 'complete' && location.href !== 'about:blank'",
            f"{url} to load",
        )

    def text(self, element_id):
        return self.eval(f"document.getElementById({json.dumps(element_id)}).textContent")

    def type_into(self, element_id, text, replace=True):
        """Focuses the field and types `text` as keyboard input would insert it."""
        self.eval(
            f"(() => {{ const e = document.getElementById({json.dumps(element_id)}); e.focus();"
            f" if ({json.dumps(replace)}) e.select(); }})()"
        )
        if text:
            self.send("Input.insertText", text=text)
        elif replace:
            self.press("Backspace", 8)

    def click(self, element_id):
        """A real mouse click at the element's centre."""
        box = self.eval(
            f"(() => {{ const e = document.getElementById({json.dumps(element_id)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2, r.width > 0 && r.height > 0]; })()"
        )
        assert box[2], f"#{element_id} is not visible"
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1
            )

    def press(self, key, code):
        for kind in ("rawKeyDown", "keyUp"):
            self.send(
                "Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code
            )

    def screenshot(self, path):
        import base64

        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))

    def close(self):
        self.ws.close()
