"use strict";
// What the vote page and the receipt page share: messages, fetching with a bound, the token's
// claims, and the verifier module (edge/verifier), called through its byte-buffer ABI.

const edgevote = (() => {
  const FETCH_TIMEOUT_MS = 10000;

  /** Shows `text` in the message element `el` as `kind` (error, ok, note); "" clears it. */
  function say(el, text, kind) {
    el.className = text ? `message ${kind}` : "message";
    el.textContent = text;
  }

  /** fetch() that gives up after FETCH_TIMEOUT_MS and says which address failed. */
  async function get(url, options = {}) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      return await fetch(url, { ...options, signal: abort.signal, cache: "no-store" });
    } catch (e) {
      throw new Error(`could not reach ${url} (${e.name === "AbortError" ? "no answer in time" : e.message})`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The `{"error", "detail"}` body of a refusal, or a stand-in naming the status. */
  async function refusalOf(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") return body;
    } catch (_) { /* not JSON */ }
    return { error: `http_${response.status}`, detail: `the server answered ${response.status}` };
  }

  /** The claims of a compact JWS, read without verifying anything; null if it is not one. */
  function claimsOf(compact) {
    const parts = compact.split(".");
    if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return null;
    try {
      const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
      const json = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
      const claims = JSON.parse(json);
      return claims && typeof claims === "object" ? claims : null;
    } catch (_) {
      return null;
    }
  }

  function bytesToBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  let verifier = null;
  /** The verifier module, loaded once from this edge's /verifier.wasm. */
  function loadVerifier() {
    verifier ??= (async () => {
      const response = await get("/verifier.wasm");
      if (!response.ok) {
        const refusal = await refusalOf(response);
        throw new Error(refusal.detail);
      }
      const { instance } = await WebAssembly.instantiate(await response.arrayBuffer(), {});
      const x = instance.exports;
      const calls = {
        verify_receipt: x.edgevote_verify_receipt,
        keyset: x.edgevote_keyset,
        prove_live: x.edgevote_prove_live,
        prove_published: x.edgevote_prove_published,
      };
      return (operation, request) => {
        const input = new TextEncoder().encode(JSON.stringify(request));
        const at = x.edgevote_input(input.length);
        if (at === 0) throw new Error("the input is too large for the verifier");
        new Uint8Array(x.memory.buffer, at, input.length).set(input);
        const length = calls[operation]();
        const output = new Uint8Array(x.memory.buffer, x.edgevote_output(), length);
        return JSON.parse(new TextDecoder().decode(output));
      };
    })();
    verifier.catch(() => { verifier = null; });
    return verifier;
  }

  /** What a refusal code means to a voter. */
  const MEANINGS = {
    malformed_jws: "it is not a complete signed document (three parts separated by dots): check you copied all of it",
    malformed_base64: "it contains characters that do not belong: check you copied it exactly",
    malformed_json: "its contents do not read as expected: it was altered or cut",
    bad_signature: "its signature does not match its contents: it was altered, or not signed by this election's keys",
    unknown_key_id: "it was signed by a key that is not in the key set",
    key_role_mismatch: "it was signed by a key that may not sign it",
    key_not_valid_at_time: "the key that signed it was not valid at that time",
    key_binding_mismatch: "the key that signed it belongs to another edge",
    wrong_document_type: "it is another kind of document (a token is not a receipt)",
    token_expired: "your token has expired",
    token_not_yet_valid: "your token is not valid yet",
    election_closed: "the election is not open",
    wrong_election: "it is for another election",
    invalid_choice: "that choice is not on the ballot",
    unknown_election: "this edge does not know that election",
    rate_limited: "too many attempts: wait a moment and try again",
    queue_unavailable: "the edge could not store your vote right now: nothing was recorded, try again",
    deadline_exceeded: "the edge did not answer in time: nothing was confirmed, try again",
    ballot_mismatch: "the receipt does not name the ballot you sent",
    too_large: "it is too long",
    invalid_field: "one of its fields breaks the rules",
    bad_keyset: "the key set is not a valid edgevote key set",
    bad_checkpoint: "the log's checkpoint is not signed by a log key of the key set, or is for another election",
    bad_proof: "the log's data does not prove it: the log is inconsistent",
    not_included: "the log does not include it (yet)",
  };

  /** A sentence for a refusal `{code|error, detail}`. */
  function explain(refusal) {
    const code = refusal.code || refusal.error || "unknown";
    const meaning = MEANINGS[code] || refusal.detail || "it was refused";
    return `${meaning.charAt(0).toUpperCase()}${meaning.slice(1)} (code ${code}; ${refusal.detail || ""}).`;
  }

  return { say, get, refusalOf, claimsOf, bytesToBase64, loadVerifier, explain };
})();
