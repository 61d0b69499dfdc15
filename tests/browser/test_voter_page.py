"""The voter's page end to end, in headless Chromium: `edgevote up` runs three regions; a voter
pastes a token, chooses, casts, gets and saves a receipt; the receipt page verifies it in the
browser (the verifier module, the voter's key set) and proves it in the region's live log; a
tampered receipt, a wrong key set, a bad or forged token each get a clear error and change
nothing. Then the accessibility basics and a phone-width screen.

Needs EDGEVOTE_BIN (the edgevote binary), the edge component (EDGEVOTE_COMPONENT, default
target/wasm32-wasip2/release/edgevote_edge_spin.wasm) and Chromium: a missing one fails."""

import base64
import json
import os
import pathlib
import subprocess
import threading
import time
import urllib.request

import pytest

from cdp import Browser

ROOT = pathlib.Path(__file__).resolve().parents[2]
ELECTION = "demo-2026"
# Attempts at the live-log proof while the region signs its next checkpoint (every 2 s).
LOG_ATTEMPTS = 20


def edgevote(*args):
    binary = os.environ.get("EDGEVOTE_BIN")
    assert binary, "set EDGEVOTE_BIN to the edgevote binary (cargo build -p edgevote)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """`edgevote up` on a fresh data directory; its stack.json, and the data directory."""
    component = os.environ.get(
        "EDGEVOTE_COMPONENT", str(ROOT / "target/wasm32-wasip2/release/edgevote_edge_spin.wasm")
    )
    assert os.path.exists(component), f"{component} missing: bash scripts/build-wasm.sh spin"
    base = tmp_path_factory.mktemp("page")
    data = base / "stack"
    log = open(base / "up.log", "w")
    up = subprocess.Popen(
        [os.environ["EDGEVOTE_BIN"], "up", "--data-dir", str(data), "--component", component,
         "--refresh-secs", "60"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    try:
        for _ in range(40):  # the banner is a dozen lines and ends with the Ctrl-C line
            line = up.stdout.readline()
            if not line or "Ctrl-C" in line:
                break
        assert up.poll() is None, f"up exited: {(base / 'up.log').read_text()}"
        info = json.loads((data / "stack.json").read_text())
        # The live table goes on printing: keep reading it so the pipe never fills.
        threading.Thread(target=lambda: [None for _ in up.stdout], daemon=True).start()
        yield info, data
    finally:
        up.terminate()
        up.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    browser = Browser(str(tmp_path_factory.mktemp("chromium")))
    page = browser.page()
    yield page
    page.close()
    browser.close()


def issue_token(data):
    out = edgevote("token", "issue", "--keys", str(data / "keys"), "--election",
                   str(data / "election.jws"))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def committed(edge_url):
    """The edge's count of votes made durable."""
    with urllib.request.urlopen(f"{edge_url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("edgevote_edge_votes_committed_total"))


def vote(page, edge, token, choice_index=0):
    page.goto(f"{edge}/")
    page.type_into("token", token)
    page.click("continue")
    page.wait_for("!document.getElementById('ballot-form').hidden", "the ballot")
    page.click(f"choice-{choice_index}")
    page.click("cast")


def screenshot(page, name):
    folder = os.environ.get("EDGEVOTE_PAGE_SCREENSHOTS")
    if folder:
        page.screenshot(os.path.join(folder, f"{name}.png"))


def test_vote_save_verify_in_page_prove_in_log_and_refuse_a_tampered_receipt(stack, page):
    info, data = stack
    edge = info["regions"][0]["edge_url"]
    vote(page, edge, issue_token(data))
    check = page.wait_for(
        "document.getElementById('receipt-check').textContent", "the receipt check"
    )
    assert "names the ballot you sent" in check, check
    receipt = page.eval("document.getElementById('receipt').value")
    assert receipt.count(".") == 2, receipt
    screenshot(page, "vote-receipt")

    # The receipt verifies offline with the published key set, as the page said.
    saved = data.parent / "receipt.jws"
    saved.write_text(receipt)
    out = edgevote("verify", "receipt", str(saved), "--keyset", str(data / "keys/keyset.json"))
    assert out.returncode == 0, out.stdout

    # The receipt page, from the link the vote page offers (receipt in the fragment).
    page.click("verify-link")
    page.wait_for("location.pathname === '/receipt' && document.readyState === 'complete'",
                  "the receipt page")
    assert page.eval("document.getElementById('receipt').value") == receipt
    page.click("verify")
    result = page.wait_for("document.getElementById('result').textContent", "a verdict")
    assert result.startswith("VALID receipt"), result
    details = page.text("details")
    fingerprint = edgevote("keys", "show", "--keys", str(data / "keys")).stdout
    fingerprint = fingerprint.split("key set fingerprint: ")[1].split()[0]
    assert fingerprint in details, details

    # Inclusion in the live log of the region that took the vote, proven in the page.
    claims = receipt.split(".")[1]
    region = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["region"]
    collector = next(r["collector_url"] for r in info["regions"] if r["name"] == region)
    page.type_into("log-url", collector)
    verdict = ""
    for _ in range(LOG_ATTEMPTS):
        page.click("check-log")
        verdict = page.wait_for(
            "(t => t !== 'Checking the log...' && t)(document.getElementById('log-result').textContent)",
            "the log's verdict",
        )
        if verdict.startswith("INCLUDED"):
            break
        time.sleep(0.5)
    assert verdict.startswith(f"INCLUDED: your ballot's vote id is leaf"), verdict
    assert f"edgevote/{ELECTION}/live/{region}" in verdict, verdict
    screenshot(page, "receipt-valid-included")

    # Another region's live log did not store this vote through its own queue. (One vote of
    # its own gives that log a signed checkpoint to prove against.)
    other_region = next(r for r in info["regions"] if r["name"] != region)
    out = edgevote("vote", "--up", str(data), "--region", other_region["name"], "--choice", "no")
    assert out.returncode == 0, out.stdout + out.stderr
    page.type_into("log-url", other_region["collector_url"])
    verdict = ""
    for _ in range(LOG_ATTEMPTS):
        page.click("check-log")
        verdict = page.wait_for(
            "(t => t !== 'Checking the log...' && t)(document.getElementById('log-result').textContent)",
            "the other log's verdict",
        )
        if "no signed checkpoint" not in verdict:
            break
        time.sleep(0.5)
    assert verdict.startswith("NOT INCLUDED"), verdict

    # A pinned fingerprint: the right one passes, another refuses the key set.
    page.type_into("fingerprint", fingerprint)
    page.click("verify")
    assert "(as expected)" in page.wait_for(
        "document.getElementById('details').textContent", "details")
    page.type_into("fingerprint", "A" * 43)
    page.click("verify")
    result = page.wait_for("document.getElementById('result').textContent", "a refusal")
    assert result.startswith("Not verified: the key set from"), result
    page.type_into("fingerprint", "")

    # The published key set, pasted, verifies it too; one without the edge's key does not.
    keyset = json.loads((data / "keys/keyset.json").read_text())
    page.click("keys-from-text")
    page.type_into("keyset-text", json.dumps(keyset))
    page.click("verify")
    result = page.wait_for("document.getElementById('result').textContent", "a verdict")
    assert result.startswith("VALID receipt"), result
    keyset["keys"] = [k for k in keyset["keys"] if k["edgevote_role"] != "edge"]
    page.type_into("keyset-text", json.dumps(keyset))
    page.click("verify")
    result = page.wait_for("document.getElementById('result').textContent", "a verdict")
    assert result.startswith("INVALID receipt") and "unknown_key_id" in result, result
    page.click("keys-from-url")

    # One character of the receipt changed: invalid, and says why.
    head, payload, signature = receipt.split(".")
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    page.type_into("receipt", f"{head}.{flipped}.{signature}")
    page.click("verify")
    result = page.wait_for("document.getElementById('result').textContent", "a verdict")
    assert result.startswith("INVALID receipt"), result
    assert "code bad_signature" in result or "code malformed" in result, result
    assert page.text("details") == "", "a tampered receipt shows no details"
    # And the log check refuses to look up a receipt that did not verify.
    page.click("check-log")
    assert "Verify the receipt first" in page.wait_for(
        "document.getElementById('log-result').textContent", "the log check's refusal")
    screenshot(page, "receipt-tampered")
    assert page.problems == [], page.problems


def test_bad_input_gets_a_clear_error_and_changes_nothing(stack, page):
    info, data = stack
    edge = info["regions"][1]["edge_url"]
    before = committed(edge)

    page.goto(f"{edge}/")
    page.type_into("token", "this is not a token")
    page.click("continue")
    error = page.wait_for("document.getElementById('error').textContent", "an error")
    assert error.startswith("That is not a voting token"), error
    assert page.eval("document.getElementById('ballot-form').hidden")

    # A token whose signature is forged: the page reads its election, the edge refuses it.
    token = issue_token(data)
    head, claims, signature = token.split(".")
    forged = f"{head}.{claims}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BA'}"
    vote(page, edge, forged, choice_index=1)
    error = page.wait_for("document.getElementById('error').textContent", "a refusal")
    assert error.startswith("Your vote was not recorded."), error
    assert "code bad_signature" in error or "code malformed" in error, error
    assert page.eval("document.getElementById('receipt-section').hidden")
    assert page.eval("document.getElementById('choice-1').checked"), "the choice is kept"
    assert page.eval("document.getElementById('token').value") == forged, "the token is kept"

    # Casting with no choice made.
    page.goto(f"{edge}/")
    page.type_into("token", token)
    page.click("continue")
    page.wait_for("!document.getElementById('ballot-form').hidden", "the ballot")
    page.click("cast")
    error = page.wait_for("document.getElementById('error').textContent", "an error")
    assert error.startswith("Choose one option"), error

    # The receipt page with nothing, or with a token instead of a receipt.
    page.goto(f"{edge}/receipt")
    page.click("verify")
    assert page.wait_for("document.getElementById('result').textContent", "an error") \
        == "Paste or open a receipt first."
    page.type_into("receipt", token)
    page.click("verify")
    result = page.wait_for("document.getElementById('result').textContent", "a verdict")
    assert "INVALID receipt" in result and "wrong_document_type" in result, result
    assert committed(edge) == before, "nothing reached the queue"
    assert page.problems == [], page.problems


CONTRAST = """(() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const failures = [];
  for (const e of document.querySelectorAll('body *')) {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !e.getClientRects().length) continue;
    const style = getComputedStyle(e);
    const [a, b] = [lum(rgb(style.color)), lum(background(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && +style.fontWeight >= 700);
    if (ratio < (large ? 3 : 4.5)) failures.push(`${e.tagName}#${e.id}: ${ratio.toFixed(2)}`);
  }
  return failures;
})()"""

UNLABELLED = """[...document.querySelectorAll('input, textarea, select')]
  .filter((e) => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map((e) => e.id || e.name)"""

# A radio group is one tab stop (its checked radio); arrow keys move within it.
FOCUSABLE = """[...document.querySelectorAll('a[href], button, input, textarea, select')]
  .filter((e) => !e.disabled && e.getClientRects().length && (e.type !== 'radio' || e.checked))
  .map((e) => e.id || e.textContent.trim())"""


def keyboard_walk(page, count):
    """Tabs through the page; each stop's id, and whether its focus is visibly outlined."""
    page.eval("document.activeElement && document.activeElement.blur()")
    stops = []
    for _ in range(count):
        page.press("Tab", 9)
        stops.append(page.eval(
            "(() => { const e = document.activeElement, s = getComputedStyle(e);"
            " return e === document.body ? null : [e.id || e.textContent.trim(),"
            " s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2]; })()"
        ))
    return [stop for stop in stops if stop]


@pytest.mark.parametrize("path", ["/", "/receipt"])
def test_pages_are_labelled_keyboard_reachable_contrasted_and_fit_a_phone(stack, page, path):
    info, _ = stack
    edge = info["regions"][2]["edge_url"]
    with urllib.request.urlopen(f"{edge}{path}", timeout=10) as r:
        csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp

    page.goto(f"{edge}{path}")
    assert page.eval("document.documentElement.lang") == "en"
    assert page.eval(UNLABELLED) == []
    assert page.eval(CONTRAST) == []
    focusable = page.eval(FOCUSABLE)
    stops = keyboard_walk(page, len(focusable) + 2)
    reached = {stop for stop, _ in stops}
    assert set(focusable) <= reached, f"not reachable by keyboard: {set(focusable) - reached}"
    assert all(visible for _, visible in stops), f"focus not visible: {stops}"

    page.send("Emulation.setDeviceMetricsOverride", width=375, height=740,
              deviceScaleFactor=2, mobile=True)
    try:
        page.goto(f"{edge}{path}")
        width = page.eval("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide on a 375 px screen"
        assert page.eval(CONTRAST) == []
        screenshot(page, f"phone{path.replace('/', '-') or '-vote'}")
    finally:
        page.send("Emulation.clearDeviceMetricsOverride")
    assert page.problems == [], page.problems
