"use strict";
// The receipt page: verify a receipt in the browser (the verifier module, with a key set the
// voter chooses), then prove its vote id in a live or published log from the log's own signed
// checkpoint and tiles. The page computes nothing itself: every check is the verifier's.

(() => {
  const $ = (id) => document.getElementById(id);
  /** Most rounds of fetching tiles for one live-log proof (a proof reads a few per level). */
  const MAX_TILE_ROUNDS = 16;
  let verified = null; // { receipt claims, keyset text } of the last receipt that verified

  function keysFrom() {
    return document.querySelector('input[name="keys-from"]:checked').value;
  }

  function showKeySource() {
    const fromUrl = keysFrom() === "url";
    $("keys-url-area").hidden = !fromUrl;
    $("keys-text-area").hidden = fromUrl;
  }

  async function readKeySet() {
    if (keysFrom() === "text") {
      const text = $("keyset-text").value.trim();
      if (!text) throw new Error("paste or open a key set first");
      return { text, source: "the key set you gave" };
    }
    const url = new URL($("keyset-url").value.trim() || "/v1/keys", location.href);
    const response = await edgevote.get(url);
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return { text: await response.text(), source: url.href };
  }

  function showDetails(rows) {
    const list = document.createElement("dl");
    for (const [term, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
    $("details").replaceChildren(list);
  }

  async function verify(event) {
    event.preventDefault();
    const result = $("result");
    edgevote.say(result, "", "note");
    $("details").replaceChildren();
    verified = null;
    const receipt = $("receipt").value.replace(/\s+/g, "");
    if (!receipt) return edgevote.say(result, "Paste or open a receipt first.", "error");
    try {
      const call = await edgevote.loadVerifier();
      const keys = await readKeySet();
      const described = call("keyset", { keyset: keys.text });
      if (described.status !== "ok") {
        return edgevote.say(result, `That key set cannot be used. ${edgevote.explain(described)}`, "error");
      }
      const expected = $("fingerprint").value.trim();
      if (expected && expected !== described.fingerprint) {
        return edgevote.say(result, `Not verified: the key set from ${keys.source} has fingerprint ${described.fingerprint}, not the ${expected} you expect. Do not trust it.`, "error");
      }
      const answer = call("verify_receipt", { receipt, keyset: keys.text });
      if (answer.status !== "valid") {
        return edgevote.say(result, `INVALID receipt. ${edgevote.explain(answer)}`, "error");
      }
      const r = answer.receipt;
      verified = { receipt: r, keyset: keys.text };
      edgevote.say(result, `VALID receipt: signed by edge ${r.edge} in ${r.region} for election ${r.election}.`, "ok");
      showDetails([
        ["Vote id", r.vote_id],
        ["Election", r.election],
        ["Accepted", new Date(r.received_at_ms).toISOString()],
        ["Edge", `${r.edge} (${r.region})`],
        ["Signing key", answer.kid],
        ["Key set", `${keys.source}, fingerprint ${answer.keyset_fingerprint}${expected ? " (as expected)" : " (compare it with the published one)"}`],
      ]);
    } catch (e) {
      edgevote.say(result, `The receipt could not be checked: ${e.message}.`, "error");
    }
  }

  /** The body at `url` (text, or bytes as base64), null for 404. */
  async function fetchOrNull(url, asBytes) {
    const response = await edgevote.get(url);
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return asBytes ? edgevote.bytesToBase64(new Uint8Array(await response.arrayBuffer())) : response.text();
  }

  async function provePublished(call, base, request) {
    const checkpoint = await fetchOrNull(`${base}/receipts.checkpoint`, false);
    const log = await fetchOrNull(`${base}/receipts.log`, false);
    if (checkpoint === null || log === null) throw new Error(`${base} holds no published receipts log`);
    return call("prove_published", { ...request, checkpoint, log });
  }

  async function proveLive(call, base, request) {
    const root = `${base}/v1/log/${encodeURIComponent(request.election)}`;
    const checkpoint = await fetchOrNull(`${root}/checkpoint`, false);
    if (checkpoint === null) throw new Error(`${base} has no signed checkpoint of this election's log yet: try again in a few seconds`);
    const found = await fetchOrNull(`${root}/index/${request.vote_id}`, false);
    if (found === null) {
      return { status: "not_included", code: "not_included", detail: `${base} does not list vote ${request.vote_id} (yet)` };
    }
    const index = JSON.parse(found).index;
    const tiles = {};
    for (let round = 0; round < MAX_TILE_ROUNDS; round++) {
      const answer = call("prove_live", { ...request, checkpoint, index, tiles });
      if (answer.status !== "need") return answer;
      for (const path of answer.paths) tiles[path] = await fetchOrNull(`${root}/${path}`, true);
    }
    throw new Error("the log needed more tile reads than a proof takes");
  }

  async function checkLog(event) {
    event.preventDefault();
    const out = $("log-result");
    edgevote.say(out, "", "note");
    if (!verified) return edgevote.say(out, "Verify the receipt first (step 2): only a valid receipt is looked up.", "error");
    const raw = $("log-url").value.trim().replace(/\/+$/, "");
    let base;
    try {
      base = new URL(raw).href.replace(/\/+$/, "");
    } catch (_) {
      return edgevote.say(out, "Enter the log's full address, starting with http:// or https://.", "error");
    }
    edgevote.say(out, "Checking the log...", "note");
    const request = { keyset: verified.keyset, election: verified.receipt.election, vote_id: verified.receipt.vote_id };
    try {
      const call = await edgevote.loadVerifier();
      const answer = base.endsWith("/audit")
        ? await provePublished(call, base, request)
        : await proveLive(call, base, request);
      if (answer.status === "included") {
        edgevote.say(out, `INCLUDED: your ballot's vote id is leaf ${answer.index} of the ${answer.size} in ${answer.origin}, proven in this page against the log's signed checkpoint.`, "ok");
      } else if (answer.status === "not_included") {
        edgevote.say(out, `NOT INCLUDED (yet): ${answer.detail}. A region's live log lists the votes its own collector stored: try the region named on the receipt, or again in a few seconds.`, "error");
      } else {
        edgevote.say(out, `The log does not prove it. ${edgevote.explain(answer)}`, "error");
      }
    } catch (e) {
      edgevote.say(out, `The log could not be checked: ${e.message}.`, "error");
    }
  }

  function loadFileInto(input, target) {
    input.addEventListener("change", async () => {
      const file = input.files[0];
      if (file) target.value = (await file.text()).trim();
    });
  }

  const fromHash = new URLSearchParams(location.hash.slice(1)).get("receipt");
  if (fromHash) $("receipt").value = fromHash;
  for (const radio of document.querySelectorAll('input[name="keys-from"]')) radio.addEventListener("change", showKeySource);
  loadFileInto($("receipt-file"), $("receipt"));
  loadFileInto($("keyset-file"), $("keyset-text"));
  $("verify-form").addEventListener("submit", verify);
  $("log-form").addEventListener("submit", checkLog);
})();
