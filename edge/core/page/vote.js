"use strict";
// The ballot page: read the token, show the election's options, post the ballot, show and keep
// the receipt, and check in the page that the receipt names the ballot sent.

(() => {
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const error = $("error");
  let ballotContext = null; // { token, election } once the token was read
  const nonces = new Map(); // token + choice -> nonce: a retry of the same ballot keeps its vote id

  function clearMessages() {
    edgevote.say(status, "", "note");
    edgevote.say(error, "", "error");
  }

  function fail(text) {
    edgevote.say(status, "", "note");
    edgevote.say(error, text, "error");
  }

  function randomNonce() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return edgevote.bytesToBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function readToken(event) {
    event.preventDefault();
    clearMessages();
    const token = $("token").value.replace(/\s+/g, "");
    if (!token) return fail("Paste your voting token first.");
    const claims = edgevote.claimsOf(token);
    if (!claims || typeof claims.aud !== "string" || typeof claims.jti !== "string") {
      return fail("That is not a voting token. A token is three groups of letters and digits separated by two dots: check you copied all of it.");
    }
    let manifest;
    try {
      const response = await edgevote.get(`/v1/elections/${encodeURIComponent(claims.aud)}`);
      if (!response.ok) return fail(`Your token is for the election "${claims.aud}": ${edgevote.explain(await edgevote.refusalOf(response))}`);
      manifest = (await response.json()).manifest;
    } catch (e) {
      return fail(`The edge could not be reached: ${e.message}. Nothing was sent; try again.`);
    }
    ballotContext = { token, election: manifest.id };
    $("question").textContent = manifest.title;
    const options = $("options");
    options.replaceChildren(...manifest.options.map((option, i) => {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "choice";
      input.id = `choice-${i}`;
      input.value = option.id;
      label.htmlFor = input.id;
      label.append(input, document.createTextNode(option.label));
      return label;
    }));
    $("ballot-form").hidden = false;
    $("ballot-heading").focus();
  }

  async function cast(event) {
    event.preventDefault();
    clearMessages();
    const chosen = document.querySelector('input[name="choice"]:checked');
    if (!ballotContext) return fail("Enter your voting token first.");
    if (!chosen) return fail("Choose one option, then cast your vote.");
    const { token, election } = ballotContext;
    const key = `${token}\n${chosen.value}`;
    if (!nonces.has(key)) nonces.set(key, randomNonce());
    const ballot = JSON.stringify({ election, token, choice: chosen.value, nonce: nonces.get(key) });
    const button = $("cast");
    button.disabled = true;
    edgevote.say(status, "Sending your vote...", "note");
    try {
      const response = await edgevote.get(`/v1/elections/${encodeURIComponent(election)}/votes`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: ballot,
      });
      if (response.status !== 202) {
        return fail(`Your vote was not recorded. ${edgevote.explain(await edgevote.refusalOf(response))}`);
      }
      const answer = await response.json();
      showReceipt(answer.receipt, ballot);
    } catch (e) {
      fail(`No answer from the edge (${e.message}): your vote may not be recorded. Cast it again: the same ballot is recorded once.`);
    } finally {
      button.disabled = false;
    }
  }

  function showReceipt(receipt, ballot) {
    edgevote.say(status, "Your vote was recorded.", "ok");
    for (const form of ["token-form", "ballot-form"]) $(form).hidden = true;
    $("receipt").value = receipt;
    $("verify-link").href = `/receipt#receipt=${encodeURIComponent(receipt)}`;
    $("receipt-section").hidden = false;
    $("receipt-heading").focus();
    checkReceipt(receipt, ballot);
  }

  /** The receipt, checked against this edge's key set and the ballot sent: a consistency check
   *  (the receipt page verifies against a key set of the voter's choosing). */
  async function checkReceipt(receipt, ballot) {
    const out = $("receipt-check");
    try {
      const verify = await edgevote.loadVerifier();
      const keys = await edgevote.get("/v1/keys");
      if (!keys.ok) throw new Error("the edge's key set could not be read");
      const answer = verify("verify_receipt", { receipt, keyset: await keys.text(), ballot });
      if (answer.status === "valid") {
        const r = answer.receipt;
        edgevote.say(out, `Checked in this page: the receipt is signed by edge ${r.edge} (${r.region}) and names the ballot you sent (vote id ${r.vote_id}).`, "ok");
      } else {
        edgevote.say(out, `Warning: this receipt does not check out. ${edgevote.explain(answer)} Keep it and report it.`, "error");
      }
    } catch (e) {
      edgevote.say(out, `The receipt could not be checked in this page (${e.message}). Save it and verify it on the receipt page or with edgevote verify receipt.`, "note");
    }
  }

  function save() {
    const receipt = $("receipt").value;
    const claims = edgevote.claimsOf(receipt) || {};
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([`${receipt}\n`], { type: "application/jose" }));
    link.download = `receipt-${claims.election || "vote"}-${String(claims.vote_id || "").slice(0, 8)}.jws`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  async function copy() {
    try {
      await navigator.clipboard.writeText($("receipt").value);
      edgevote.say(status, "The receipt is copied.", "ok");
    } catch (_) {
      $("receipt").select();
      edgevote.say(status, "Copying is not allowed here: the receipt is selected, copy it yourself.", "note");
    }
  }

  /** QR scanning where the browser has a barcode reader (BarcodeDetector); else paste only. */
  function offerScanning() {
    if (!("BarcodeDetector" in window)) return;
    $("scan-area").hidden = false;
    $("scan-hint").hidden = false;
    $("scan").addEventListener("change", async () => {
      clearMessages();
      const file = $("scan").files[0];
      if (!file) return;
      try {
        const codes = await new BarcodeDetector({ formats: ["qr_code"] }).detect(await createImageBitmap(file));
        if (!codes.length) return fail("No QR code was found in that photo: try again, closer and sharper, or paste the token.");
        $("token").value = codes[0].rawValue.trim();
        edgevote.say(status, "The token was read from the QR code. Press Continue.", "ok");
      } catch (e) {
        fail(`The photo could not be read (${e.message}): paste the token instead.`);
      }
    });
  }

  $("token-form").addEventListener("submit", readToken);
  $("ballot-form").addEventListener("submit", cast);
  $("save").addEventListener("click", save);
  $("copy").addEventListener("click", copy);
  offerScanning();
})();
