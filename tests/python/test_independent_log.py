"""An auditor checks edgevote's published audit log from a running stack with nothing of ours:
the C2SP signed-note checkpoint (Ed25519 over the note body, key named by a C2SP verifier key),
the RFC 6962 tree head recomputed from the log, an RFC 6962 inclusion proof for every receipt
(generated and verified here, from RFC 6962 section 2.1.1 and RFC 9162 section 2.1.3.2), the
signed tally (jwcrypto) and the counts recomputed from the choices log.

The stack is real: `edgevote up` runs three regions, `edgevote load` votes through them, the
stack stops, `edgevote audit publish` signs the log and `edgevote audit serve` serves it over
HTTP, where this test fetches every file it checks. Only the trust roots (the authority's key
set and the election manifest) are read from the stack's own directory, as an auditor would get
them from the authority's publication.
"""

import base64
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwcrypto import jwk, jws

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("EDGEVOTE_BIN", REPO / "target" / "debug" / "edgevote"))
COMPONENT = REPO / "target" / "wasm32-wasip2" / "release" / "edgevote_edge_spin.wasm"


# --- RFC 6962 / RFC 9162 Merkle trees, written from the RFCs -----------------------------------

def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list) -> bytes:
    """RFC 6962 2.1: the Merkle Tree Hash of a list of leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = largest_power_of_two_below(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def inclusion_path(m: int, leaves: list) -> list:
    """RFC 6962 2.1.1: PATH(m, D[n])."""
    n = len(leaves)
    if n <= 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return inclusion_path(m, leaves[:k]) + [mth(leaves[k:])]
    return inclusion_path(m - k, leaves[k:]) + [mth(leaves[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, path: list, root: bytes) -> bool:
    """RFC 9162 2.1.3.2: verifying an inclusion proof."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# --- C2SP signed notes and checkpoints ---------------------------------------------------------

def parse_vkey(text: str):
    """C2SP signed-note verifier key: name+hash+base64(0x01 || key)."""
    name, key_hash, encoded = text.strip().split("+", 2)
    raw = base64.b64decode(encoded)
    assert raw[0] == 1 and len(raw) == 33, "an Ed25519 verifier key"
    expected = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert bytes.fromhex(key_hash) == expected, "the key hash binds name and key"
    return name, raw[1:], expected


def verify_note(note: str, vkey: str) -> list:
    """Verifies a signed note by the key `vkey`; returns the body's lines."""
    name, key, key_id = parse_vkey(vkey)
    body, signatures = note.split("\n\n", 1)
    body += "\n"
    public = Ed25519PublicKey.from_public_bytes(key)
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            continue
        signer, sig = line[2:].split(" ", 1)
        raw = base64.b64decode(sig)
        if signer == name and raw[:4] == key_id:
            public.verify(raw[4:], body.encode())  # raises on a bad signature
            return body.splitlines()
    raise AssertionError(f"no signature by {name} on the note")


def fetch(base: str, name: str) -> str:
    with urllib.request.urlopen(f"{base}/audit/{name}", timeout=10) as answer:
        return answer.read().decode()


def b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


# --- the running stack -------------------------------------------------------------------------

def run(cwd, *args, timeout=300):
    out = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True,
                         check=False, timeout=timeout)
    assert out.returncode == 0, f"edgevote {args} failed: {out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A stack that ran a load, its published log, and `audit serve` serving it."""
    assert BIN.is_file(), f"build the CLI first (cargo build -p edgevote); missing {BIN}"
    assert COMPONENT.is_file(), "build the component first (scripts/build-wasm.sh spin)"
    d = tmp_path_factory.mktemp("stack")
    data = d / "up"
    up = subprocess.Popen([str(BIN), "up", "--data-dir", str(data), "--component",
                           str(COMPONENT), "--open-for", "1h"], cwd=d,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if (data / "stack.json").is_file():
                break
            assert up.poll() is None, "edgevote up exited early"
            time.sleep(0.1)
        receipts = d / "receipts"
        run(d, "load", "--up", str(data), "--voters", "40", "--rate", "200",
            "--receipts-dir", str(receipts))
        live = live_log_snapshots(d, data)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=120)
    log = d / "audit"
    run(d, "audit", "publish", "--up", str(data), "--out", str(log), "--before-close")
    server = subprocess.Popen([str(BIN), "audit", "serve", "--log", str(log), "--listen",
                               "127.0.0.1:0"], cwd=d, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        base = line.split("http://", 1)[1].strip().rsplit("/audit/", 1)[0]
        yield {
            "base": f"http://{base}",
            "receipts": sorted(p.read_text().strip() for p in receipts.iterdir()),
            # The trust roots, as the authority publishes them (not the served folder's copies).
            "keyset": (data / "keys" / "keyset.json").read_text(),
            "manifest": (data / "election.jws").read_text().strip(),
            "live": live,
        }
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def tile_path(level, index: int, width: int) -> str:
    """C2SP tlog-tiles: tile/<L>/<N>[.p/<W>], N in 3-digit groups, all but the last x-prefixed."""
    digits = str(index)
    digits = digits.zfill((len(digits) + 2) // 3 * 3)
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    path = f"tile/{level}/" + "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])
    return path if width == 256 else f"{path}.p/{width}"


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def live_log_snapshots(d, data):
    """Two checkpoints of the first region's live log, before and after one more vote, and
    its entries as served (entry bundles, full or partial)."""
    info = json.loads((data / "stack.json").read_text())
    region = info["regions"][0]
    base = f"{region['collector_url']}/v1/log/{info['election']}"

    def checkpoint():
        return get(f"{base}/checkpoint").decode()

    first = None
    for _ in range(50):
        first = get(f"{base}/checkpoint")
        if first is not None:
            break
        time.sleep(0.2)
    first = first.decode()
    size = int(first.split("\n")[1])
    run(d, "vote", "--up", str(data), "--region", region["name"], "--choice", "yes")
    second = first
    for _ in range(50):
        second = checkpoint()
        if int(second.split("\n")[1]) > size:
            break
        time.sleep(0.2)
    new_size = int(second.split("\n")[1])
    entries = []
    for bundle in range((new_size + 255) // 256):
        width = min(256, new_size - bundle * 256)
        raw = get(f"{base}/{tile_path('entries', bundle, width)}")
        if raw is None:  # a partial bundle may already be full: read its prefix (C2SP allows)
            raw = get(f"{base}/{tile_path('entries', bundle, 256)}")
        while raw and len(entries) < bundle * 256 + width:
            length = int.from_bytes(raw[:2], "big")
            entries.append(raw[2:2 + length])
            raw = raw[2 + length:]
    return {"origin": region["name"], "first": first, "second": second, "entries": entries,
            "election": info["election"]}


def consistency_proof(m: int, leaves: list) -> list:
    """RFC 9162 2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
    def subproof(m, d, complete):
        n = len(d)
        if m == n:
            return [] if complete else [mth(d)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return subproof(m, d[:k], complete) + [mth(d[k:])]
        return subproof(m - k, d[k:], False) + [mth(d[:k])]
    return [] if m in (0, len(leaves)) else subproof(m, leaves, True)


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       proof: list) -> bool:
    """RFC 9162 2.1.4.2: verifying a consistency proof."""
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0 or first > second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree's root is a node of the proof
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def log_vkey(keyset_json: str, origin: str) -> str:
    """The log key's C2SP verifier key, built here from the pinned key set (never the served
    `log.vkey`)."""
    keys = json.loads(keyset_json)["keys"]
    logs = [k for k in keys if k.get("edgevote_role") == "log"]
    assert len(logs) == 1, "one log key in the authority's key set"
    raw = b"\x01" + b64url(logs[0]["x"])
    key_hash = hashlib.sha256(origin.encode() + b"\n" + raw).digest()[:4].hex()
    return f"{origin}+{key_hash}+{base64.b64encode(raw).decode()}"


def checked_log(served, name):
    """Fetches `<name>.log` and its checkpoint, verifies the note and the tree head; returns
    (origin, leaf hashes, root, entries)."""
    election = json.loads(b64url(served["manifest"].split(".")[1]))["id"]
    origin = f"edgevote/{election}/{name}"
    lines = verify_note(fetch(served["base"], f"{name}.checkpoint"),
                        log_vkey(served["keyset"], origin))
    assert lines[0] == origin
    size, root = int(lines[1]), base64.b64decode(lines[2])
    entries = fetch(served["base"], f"{name}.log").splitlines()
    leaves = [leaf_hash(e.encode()) for e in entries]
    assert len(leaves) == size, "the log has as many entries as its checkpoint says"
    assert mth(leaves) == root, "the tree head recomputed from the entries is the signed root"
    return leaves, root, entries


def test_checkpoints_verify_and_every_receipt_is_included(served):
    leaves, root, entries = checked_log(served, "receipts")
    assert entries == sorted(set(entries)), "sorted, every vote id once"
    assert len(served["receipts"]) >= 40
    keys = jwk.JWKSet.from_json(served["keyset"])
    for compact in served["receipts"]:
        header = json.loads(b64url(compact.split(".")[0]))
        token = jws.JWS()
        token.deserialize(compact)
        token.verify(keys.get_key(header["kid"]), alg="EdDSA")
        vote_id = json.loads(token.payload)["vote_id"]
        index = entries.index(vote_id)
        path = inclusion_path(index, leaves)
        assert verify_inclusion(index, len(leaves), leaves[index], path, root)
        # A proof for another leaf, or against another root, fails.
        other = (index + 1) % len(leaves)
        if other != index:
            assert not verify_inclusion(other, len(leaves), leaves[index], path, root)
        assert not verify_inclusion(index, len(leaves), leaves[index], path, bytes(32))


def test_the_signed_tally_names_both_roots_and_the_counts_add_up(served):
    receipt_leaves, receipts_root, receipt_entries = checked_log(served, "receipts")
    _, choices_root, choices = checked_log(served, "choices")
    compact = fetch(served["base"], "tally.jws").strip()
    header = json.loads(b64url(compact.split(".")[0]))
    assert header["typ"] == "edgevote-tally+jws"
    keys = jwk.JWKSet.from_json(served["keyset"])
    token = jws.JWS()
    token.deserialize(compact)
    token.verify(keys.get_key(header["kid"]), alg="EdDSA")
    tally = json.loads(token.payload)
    assert b64url(tally["receipts_root"]) == receipts_root
    assert b64url(tally["choices_root"]) == choices_root
    assert tally["ballots"] == len(receipt_entries)
    assert tally["voters"] == len(choices) <= len(receipt_entries)
    counts = {}
    for choice in choices:
        counts[choice] = counts.get(choice, 0) + 1
    assert {k: v for k, v in tally["counts"].items() if v} == counts
    assert "incomplete" not in tally, "the stack had drained: the tally is the result"


def test_an_edited_note_or_a_mismatched_verifier_key_is_refused(served):
    election = json.loads(b64url(served["manifest"].split(".")[1]))["id"]
    origin = f"edgevote/{election}/receipts"
    note = fetch(served["base"], "receipts.checkpoint")
    vkey = log_vkey(served["keyset"], origin)
    size = note.split("\n")[1]
    edited = note.replace(f"\n{size}\n", f"\n{int(size) + 1}\n", 1)
    with pytest.raises(Exception):
        verify_note(edited, vkey)
    name, _, encoded = vkey.split("+", 2)
    with pytest.raises(AssertionError):
        parse_vkey(f"{name}+00000000+{encoded}")


def test_the_live_log_grew_consistently_between_two_checkpoints(served):
    live = served["live"]
    origin = f"edgevote/{live['election']}/live/{live['origin']}"
    vkey = log_vkey(served["keyset"], origin)
    first = verify_note(live["first"], vkey)
    second = verify_note(live["second"], vkey)
    assert first[0] == second[0] == origin
    m, n = int(first[1]), int(second[1])
    assert 0 < m < n, (m, n)
    leaves = [leaf_hash(e) for e in live["entries"]]
    assert len(leaves) == n
    old_root, new_root = base64.b64decode(first[2]), base64.b64decode(second[2])
    # The older head is the head of a prefix of the newer tree: the log only grew.
    assert mth(leaves[:m]) == old_root and mth(leaves) == new_root
    proof = consistency_proof(m, leaves)
    assert verify_consistency(m, n, old_root, new_root, proof)
    assert not verify_consistency(m, n, new_root, old_root, proof)
    assert not verify_consistency(m, n, old_root, bytes(32), proof)
