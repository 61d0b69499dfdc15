"""The Cloudflare Worker edge (edge/worker) end to end, under workerd, against SQS on moto.

The edgevote CLI makes the keys, the elections and the tokens. One workerd process runs the
built bundle (edge/worker/build/, from `bash scripts/worker.sh`) as several workers, each on its
own 127.0.0.1 port and each configured through its environment bindings exactly as on
Cloudflare:

- `edge`: one queue, moto's SQS queue in eu-west-1 (Ed25519 by WebCrypto, the default);
- `wasm`: the same, with EDGEVOTE_CRYPTO=wasm (Ed25519 in the bundle's own Wasm);
- `down`: one queue on a closed port (no queue can take a vote);
- `failover`: the closed port first, then moto's queue in eu-central-1;
- `misconfigured`: EDGEVOTE_QUEUES missing;
- `small`: as `edge`, with at most SMALL_BATCH votes per message (EDGEVOTE_BATCH_MAX_VOTES);
- `slow`: one queue, a local stand-in that holds every SendMessage SLOW_SQS_HOLD_SECS;
- `counted`: as `edge`, on a moto queue of its own that an `edgevote collector run` drains.

Every refusal is checked for its status and code and for leaving both queues empty.

A missing tool or bundle (workerd, moto_server, the build, the CLI) fails the tests with the
command that provides it; nothing is skipped.
"""

import base64
import concurrent.futures
import contextlib
import gzip
import hashlib
import http.client
import http.server
import json
import os
import pathlib
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CACHE = pathlib.Path(os.environ.get("EDGEVOTE_CACHE", pathlib.Path.home() / ".cache" / "edgevote"))
WORKERD = pathlib.Path(
    os.environ.get("EDGEVOTE_WORKERD", CACHE / "npm" / "node_modules" / ".bin" / "workerd")
)
MOTO = pathlib.Path(os.environ.get("EDGEVOTE_MOTO_SERVER", REPO / ".venv" / "bin" / "moto_server"))
BIN = pathlib.Path(os.environ.get("EDGEVOTE_BIN", REPO / "target" / "debug" / "edgevote"))
BUILD = REPO / "edge" / "worker" / "build"
BUNDLE = ("index.js", "index_bg.wasm")
# Sources whose change makes the bundle stale.
SOURCES = [REPO / p for p in ("edge/worker/src", "edge/core/src", "edge/sqs/src", "shared/src")] + [
    REPO / "edge" / "worker" / "Cargo.toml",
    REPO / "edge" / "worker" / "Cargo.lock",
]

ELECTION = "ref-2026"
OTHER_ELECTION = "other-2026"
EDGE_ID = "cf-test-1"
REGION = "eu-west-1"
FAILOVER_REGION = "eu-central-1"
ACCOUNT = "123456789012"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDEDGEVOTETEST",
    "AWS_SECRET_ACCESS_KEY": "edgevote-test-secret",
    "AWS_DEFAULT_REGION": REGION,
}
READY_TIMEOUT = 60
# EDGEVOTE_BATCH_MAX_VOTES of the `small` worker.
SMALL_BATCH = 3
# How long the `slow` worker's queue holds each SendMessage.
SLOW_SQS_HOLD_SECS = 0.6


# ---------------------------------------------------------------------------------------------
# helpers


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jws_parts(compact: str):
    header, payload, signature = compact.split(".")
    return json.loads(b64d(header)), json.loads(b64d(payload)), b64d(signature)


def sign_jws(seed: bytes, kid: str, typ: str, claims: dict) -> str:
    """A compact EdDSA JWS made with `cryptography`, the way edgevote's own signer makes one."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(seed)
    header = b64e(json.dumps({"alg": "EdDSA", "kid": kid, "typ": typ}).encode())
    payload = b64e(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode())
    return f"{header}.{payload}.{b64e(signature)}"


def verify_ed25519(x: str, compact: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    header, payload, signature = compact.rsplit(".", 2)
    Ed25519PublicKey.from_public_bytes(b64d(x)).verify(b64d(signature), f"{header}.{payload}".encode())


def token_ballots(seed: bytes, kid: str, count: int, tag: str, election=ELECTION) -> list:
    """`count` ballots of distinct voters, their tokens signed here with the authority key
    (`seed`, `kid`): as the CLI issues them, without a process per token."""
    now = int(time.time())
    out = []
    for i in range(count):
        claims = {"jti": f"{tag}-{i}", "sub": f"voter-{tag}-{i}", "aud": election,
                  "iat": now - 1, "nbf": now - 1, "exp": now + 3600}
        token = sign_jws(seed, kid, "edgevote-token+jwt", claims)
        out.append({"election": election, "token": token, "choice": "yes",
                    "nonce": b64e(secrets.token_bytes(16))})
    return out


class StandInSqs(http.server.ThreadingHTTPServer):
    """A local stand-in for SQS on 127.0.0.1 that answers every SendMessage as SQS answers an
    accepted one, after holding it `hold_secs`, and records each message body in order.
    `answer` shapes the answer (ANSWERS): of a declared length as SQS sends it, or in chunks
    without one, or padded past what an edge reads."""

    daemon_threads = True

    def __init__(self, hold_secs: float = 0.0):
        super().__init__(("127.0.0.1", 0), _StandInHandler)
        self.hold_secs = hold_secs
        self.answer = "sized"
        self.bodies = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def queue_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{ACCOUNT}/edgevote-votes"

    def take(self) -> list:
        """The bodies received so far, forgotten here."""
        with self.lock:
            bodies, self.bodies = self.bodies, []
        return bodies


# The edges read at most this much of a SendMessage answer (edgevote_edge_sqs::MAX_ANSWER_BYTES).
MAX_ANSWER_BYTES = 16 * 1024

# answer shape: (padding bytes in the answer, sent in chunks without a declared length,
# gzip-compressed with its compressed length declared)
ANSWERS = {
    "sized": (0, False, False),
    "chunked": (0, True, False),
    "gzip": (0, False, True),
    "oversized": (MAX_ANSWER_BYTES, False, False),
    "oversized_chunked": (MAX_ANSWER_BYTES, True, False),
    # A few hundred bytes on the wire that decode past the bound.
    "oversized_gzip": (MAX_ANSWER_BYTES, False, True),
}


class _StandInHandler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 for chunked answers; each answer closes its connection.
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        time.sleep(self.server.hold_secs)
        with self.server.lock:
            self.server.bodies.append(request["MessageBody"])
        padding, chunked, compressed = ANSWERS[self.server.answer]
        # A genuine answer, whatever its padding: only its size may make an edge refuse it.
        body = json.dumps({"MessageId": secrets.token_hex(8), "MD5OfMessageBody": "",
                           "Padding": "x" * padding}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("connection", "close")
        if compressed:
            body = gzip.compress(body)
            self.send_header("content-encoding", "gzip")
        if chunked:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 40):
                piece = body[start:start + 40]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def capnp_text(value: str) -> str:
    """A Cap'n Proto text literal."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def log_tail(path: pathlib.Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


class Http:
    """A tiny HTTP client: status, headers (lower-case names) and JSON body of one request."""

    def __init__(self, port: int):
        self.port = port

    def request(self, method, path, body=None, content_type="application/json", timeout=30, chunked=False):
        """`chunked`: the body goes in pieces of 50 bytes with no declared length."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if chunked:
            whole = body
            body = (whole[i:i + 50] for i in range(0, len(whole), 50))
        try:
            conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
            response = conn.getresponse()
            raw = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw
        return response.status, headers, data

    def vote(self, ballot, election=ELECTION, content_type="application/json", chunked=False):
        body = ballot if isinstance(ballot, bytes) else json.dumps(ballot).encode()
        return self.request("POST", f"/v1/elections/{election}/votes", body, content_type, chunked=chunked)


def stop(proc: subprocess.Popen) -> None:
    """Stops a server this module started: SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(*args, cwd=None, env=None):
    out = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"{' '.join(map(str, args))} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout.strip()


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def cli():
    if not BIN.is_file():
        run("cargo", "build", "--locked", "-p", "edgevote", cwd=REPO)
    assert BIN.is_file(), f"the edgevote CLI is missing at {BIN} (cargo build -p edgevote)"
    return BIN


@pytest.fixture(scope="module")
def bundle():
    for name in BUNDLE:
        assert (BUILD / name).is_file(), (
            f"the worker bundle is missing ({BUILD / name}): run `bash scripts/worker.sh`"
        )
    built = min((BUILD / name).stat().st_mtime for name in BUNDLE)
    stale = [
        str(f.relative_to(REPO))
        for root in SOURCES
        for f in ([root] if root.is_file() else root.rglob("*.rs"))
        if f.stat().st_mtime > built
    ]
    assert not stale, (
        f"the worker bundle is older than {stale[:5]}: rebuild it with `bash scripts/worker.sh build`"
    )
    return BUILD


@pytest.fixture(scope="module")
def world(cli, tmp_path_factory):
    """Keys, two elections and tokens, made by the edgevote CLI."""
    d = tmp_path_factory.mktemp("world")
    keys = d / "keys"
    run(cli, "keys", "gen", "--keys", keys, "--role", "authority")
    run(cli, "keys", "gen", "--keys", keys, "--role", "edge", "--edge", EDGE_ID, "--region", REGION)
    for election, out in ((ELECTION, "election.jws"), (OTHER_ELECTION, "other.jws")):
        run(cli, "election", "create", "--keys", keys, "--id", election, "--title", "Worker test",
            "--option", "yes:Yes", "--option", "no:No", "--opens", "now", "--closes", "+1h",
            "--out", d / out)
    keyset = json.loads((keys / "keyset.json").read_text())
    by_role = {k["edgevote_role"]: k for k in keyset["keys"]}
    private = {
        role: json.loads((keys / "private" / f"{k['kid']}.jwk").read_text())
        for role, k in by_role.items()
    }

    def token(voter, election_file="election.jws"):
        return run(cli, "token", "issue", "--keys", keys, "--election", d / election_file,
                   "--voter", voter)

    # A second, unrelated authority: its tokens name a key the edge does not know.
    stranger = d / "stranger"
    run(cli, "keys", "gen", "--keys", stranger, "--role", "authority")
    run(cli, "election", "create", "--keys", stranger, "--id", ELECTION, "--title", "Stranger",
        "--option", "yes", "--closes", "+1h", "--out", d / "stranger.jws")
    stranger_token = run(cli, "token", "issue", "--keys", stranger, "--election",
                         d / "stranger.jws", "--voter", "voter-stranger")

    return {
        "dir": d,
        "keys": keys,
        "keyset_path": keys / "keyset.json",
        "keyset": keyset,
        "keyset_text": (keys / "keyset.json").read_text(),
        "elections": [(d / "election.jws").read_text().strip(), (d / "other.jws").read_text().strip()],
        "authority": by_role["authority"],
        "edge": by_role["edge"],
        "authority_seed": b64d(private["authority"]["d"]),
        "edge_key_text": (keys / "private" / f"{by_role['edge']['kid']}.jwk").read_text(),
        "token": token,
        "stranger_token": stranger_token,
    }


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A moto server on 127.0.0.1 with an SQS queue in REGION and one in FAILOVER_REGION."""
    assert MOTO.is_file(), (
        f"moto_server is missing at {MOTO}: run `scripts/bootstrap.sh python` (or set EDGEVOTE_MOTO_SERVER)"
    )
    import boto3

    log = tmp_path_factory.mktemp("moto") / "moto.log"
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **AWS_ENV},
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert proc.poll() is None, f"moto_server exited ({proc.returncode}):\n{log_tail(log)}"
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert time.monotonic() < deadline, f"moto_server did not listen on {port}:\n{log_tail(log)}"
            time.sleep(0.1)
        queues = {}
        for region in (REGION, FAILOVER_REGION):
            sqs = boto3.client(
                "sqs", endpoint_url=endpoint, region_name=region,
                aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            )
            url = sqs.create_queue(QueueName="edgevote-votes")["QueueUrl"]
            assert url.startswith(endpoint), url
            queues[region] = (sqs, url)
        # A queue of its own for the test that runs a collector on it (the other tests drain
        # theirs themselves), and its dead-letter queue.
        sqs = queues[REGION][0]
        counted = {name: sqs.create_queue(QueueName=name)["QueueUrl"]
                   for name in ("edgevote-counted", "edgevote-counted-dlq")}
        yield {"endpoint": endpoint, "queues": queues, "queue_url": queues[REGION][1], "log": log,
               "counted": counted}
    finally:
        stop(proc)


def drain(moto, region=REGION):
    """Every message now in the region's queue (received and deleted)."""
    sqs, url = moto["queues"][region]
    bodies = []
    while True:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        )
        messages = answer.get("Messages", [])
        if not messages:
            return bodies
        for m in messages:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def drain_all(moto):
    return [body for region in moto["queues"] for body in drain(moto, region)]


@pytest.fixture(scope="module")
def slow_sqs():
    """A stand-in SQS queue that holds every SendMessage for SLOW_SQS_HOLD_SECS."""
    server = StandInSqs(hold_secs=SLOW_SQS_HOLD_SECS)
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def odd_sqs():
    """A stand-in SQS queue whose answers a test shapes (`answer`, see ANSWERS)."""
    server = StandInSqs()
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def workers(bundle, world, moto, slow_sqs, odd_sqs, tmp_path_factory):
    """One workerd process serving the bundle as differently configured workers."""
    assert WORKERD.exists(), f"workerd is missing at {WORKERD}: run `bash scripts/worker.sh tools`"
    d = tmp_path_factory.mktemp("workerd")
    for name in BUNDLE:
        shutil.copy(bundle / name, d / name)
    closed = f"http://127.0.0.1:{free_port()}/{ACCOUNT}/edgevote-votes"
    base = {
        "EDGEVOTE_KEYSET": world["keyset_text"],
        "EDGEVOTE_ELECTIONS": "\n".join(world["elections"]) + "\n",
        "EDGEVOTE_EDGE_KEY": world["edge_key_text"],
        "EDGEVOTE_EDGE_ID": EDGE_ID,
        "EDGEVOTE_REGION": REGION,
        "EDGEVOTE_QUEUE_TIMEOUT_MS": "5000",
        "AWS_ACCESS_KEY_ID": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }
    variants = {
        "edge": {**base, "EDGEVOTE_QUEUES": f"{REGION}={moto['queue_url']}"},
        "wasm": {**base, "EDGEVOTE_QUEUES": f"{REGION}={moto['queue_url']}", "EDGEVOTE_CRYPTO": "wasm"},
        "down": {**base, "EDGEVOTE_QUEUES": f"{REGION}={closed}"},
        "failover": {
            **base,
            "EDGEVOTE_QUEUES": f"{REGION}={closed}, {FAILOVER_REGION}={moto['queues'][FAILOVER_REGION][1]}",
        },
        "misconfigured": base,
        "small": {**base, "EDGEVOTE_QUEUES": f"{REGION}={moto['queue_url']}",
                  "EDGEVOTE_BATCH_MAX_VOTES": str(SMALL_BATCH)},
        "slow": {**base, "EDGEVOTE_QUEUES": f"{REGION}={slow_sqs.queue_url()}"},
        "odd": {**base, "EDGEVOTE_QUEUES": f"{REGION}={odd_sqs.queue_url()}"},
        "counted": {**base, "EDGEVOTE_QUEUES": f"{REGION}={moto['counted']['edgevote-counted']}"},
    }
    ports = {name: free_port() for name in variants}
    config = d / "config.capnp"
    config.write_text(workerd_config(variants, ports))
    log = d / "workerd.log"
    print("WORKERD LOG", log)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(WORKERD), "serve", str(config), "--verbose"],
            cwd=d, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        for name, port in ports.items():
            while True:
                assert proc.poll() is None, f"workerd exited ({proc.returncode}):\n{log_tail(log)}"
                try:
                    status, _, _ = Http(port).request("GET", "/healthz", timeout=5)
                    break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"workerd ({name}) did not answer on {port}:\n{log_tail(log)}"
                time.sleep(0.2)
        yield {name: Http(port) for name, port in ports.items()} | {"log": log}
    finally:
        stop(proc)


def workerd_config(variants: dict, ports: dict) -> str:
    services = []
    sockets = []
    workers = []
    for name, env in variants.items():
        bindings = ",\n      ".join(f"(name = {capnp_text(k)}, text = {capnp_text(v)})" for k, v in env.items())
        workers.append(f"""
const {name}Worker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  bindings = [
      {bindings}
  ],
  globalOutbound = "internet",
);
""")
        services.append(f'(name = "{name}", worker = .{name}Worker)')
        sockets.append(f'(name = "{name}", address = "127.0.0.1:{ports[name]}", http = (), service = "{name}")')
    # EDGEVOTE_WORKERD_V8_FLAGS (space-separated), for profiling: e.g. "--perf-basic-prof" makes
    # V8 write /tmp/perf-PID.map, so `perf report` names JavaScript and Wasm functions.
    v8_flags = os.environ.get("EDGEVOTE_WORKERD_V8_FLAGS", "").split()
    flags = f"v8Flags = [{', '.join(capnp_text(f) for f in v8_flags)}],\n  " if v8_flags else ""
    return f"""using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  {flags}services = [
    {", ".join(services)},
    # Outbound fetch may reach the local network (moto on 127.0.0.1).
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [
    {", ".join(sockets)},
  ],
);
""" + "".join(workers)


# ---------------------------------------------------------------------------------------------
# ballots


def ballot(world, voter=None, choice="yes", token=None, election=ELECTION, nonce=None):
    return {
        "election": election,
        "token": token if token is not None else world["token"](voter or f"voter-{secrets.token_hex(4)}"),
        "choice": choice,
        "nonce": nonce or b64e(secrets.token_bytes(16)),
    }


def assert_refused(answer, status, code):
    got_status, headers, body = answer
    assert (got_status, isinstance(body, dict) and body.get("error")) == (status, code), answer
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert "receipt" not in body, body


# ---------------------------------------------------------------------------------------------
# tests


def test_reads(workers, world):
    status, _, body = workers["edge"].request("GET", "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    status, headers, body = workers["edge"].request("GET", "/v1/keys")
    assert status == 200 and headers["content-type"] == "application/jwk-set+json"
    assert {k["kid"] for k in body["keys"]} == {k["kid"] for k in world["keyset"]["keys"]}
    status, _, body = workers["edge"].request("GET", f"/v1/elections/{ELECTION}")
    assert status == 200 and body["signed"] == world["elections"][0], body
    # The route is the URL's path: the query and fragment are not part of it, and a
    # percent-encoded letter is not that letter.
    status, _, body = workers["edge"].request("GET", f"/v1/elections/{ELECTION}?v=1#top")
    assert status == 200 and body["signed"] == world["elections"][0], body
    assert_refused(workers["edge"].request("GET", f"/v1/%65lections/{ELECTION}"), 404, "not_found")
    assert_refused(workers["edge"].request("GET", "/nowhere"), 404, "not_found")
    assert_refused(workers["edge"].request("DELETE", f"/v1/elections/{ELECTION}/votes"), 405,
                   "method_not_allowed")


@pytest.mark.parametrize("worker", ["edge", "wasm"])
def test_valid_vote_is_enqueued_then_receipted(worker, workers, world, moto):
    drain_all(moto)
    sent = ballot(world, voter=f"voter-ok-{worker}")
    status, headers, body = workers[worker].vote(sent)
    assert status == 202, (status, body, log_tail(workers["log"]))
    assert body["election"] == ELECTION
    receipt = body["receipt"]

    # The receipt verifies with the CLI against the published key set.
    verified = json.loads(run(BIN, "verify", "receipt", receipt, "--keyset", world["keyset_path"],
                              "--election", ELECTION, "--json"))
    assert verified["valid"] is True and verified["kid"] == world["edge"]["kid"], verified
    claims = verified["claims"]
    assert (claims["vote_id"], claims["edge"], claims["region"]) == (body["vote_id"], EDGE_ID, REGION)

    # The queue holds exactly one message: the vote's envelope, signed by the edge key.
    messages = drain(moto)
    assert len(messages) == 1, messages
    envelope = messages[0]
    header, payload, _ = jws_parts(envelope)
    assert header == {"alg": "EdDSA", "kid": world["edge"]["kid"], "typ": "edgevote-envelope+jws"}
    verify_ed25519(world["edge"]["x"], envelope)
    assert payload["v"] == 1
    assert payload["batch_id"] == batch_id_of([body["vote_id"]])
    assert (payload["edge"], payload["region"]) == (EDGE_ID, REGION)
    assert len(payload["votes"]) == 1
    assert payload["votes"][0]["ballot"] == sent
    assert payload["votes"][0]["received_at_ms"] == claims["received_at_ms"]
    assert abs(payload["created_at_ms"] / 1000 - time.time()) < 300

    # A retry (same nonce) is the same vote: same vote id, enqueued again (the collector dedups).
    status, _, again = workers[worker].vote(sent)
    assert status == 202 and again["vote_id"] == body["vote_id"], again
    assert len(drain(moto)) == 1


def test_failover_to_the_next_queue(workers, world, moto):
    drain_all(moto)
    status, _, body = workers["failover"].vote(ballot(world, voter="voter-failover"))
    assert status == 202, (status, body, log_tail(workers["log"]))
    run(BIN, "verify", "receipt", body["receipt"], "--keyset", world["keyset_path"])
    assert drain(moto, REGION) == []
    messages = drain(moto, FAILOVER_REGION)
    assert len(messages) == 1, messages
    _, envelope, _ = jws_parts(messages[0])
    assert envelope["batch_id"] == batch_id_of([body["vote_id"]])


def expired_token(world):
    """A token signed by the authority, valid for one second from the key's first second."""
    start = world["authority"]["valid_from"]
    claims = {"jti": "expired-1", "sub": "voter-expired", "aud": ELECTION,
              "iat": start, "nbf": start, "exp": start + 1}
    while time.time() < start + 2:
        time.sleep(0.1)
    return sign_jws(world["authority_seed"], world["authority"]["kid"], "edgevote-token+jwt", claims)


def with_signature(token: str, signature: bytes) -> str:
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.{b64e(signature)}"


# The order of the Ed25519 group, little-endian.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493


def non_canonical_s_token(world):
    """A genuine token with S replaced by S + L: the equation still holds; strict Ed25519 refuses it."""
    token = world["token"]("voter-non-canonical")
    signature = b64d(token.split(".")[2])
    s = int.from_bytes(signature[32:], "little") + GROUP_ORDER
    return with_signature(token, signature[:32] + s.to_bytes(32, "little"))


def small_order_r_token(world):
    """A genuine token's claims with R = the identity point and S = 0."""
    token = world["token"]("voter-small-order")
    return with_signature(token, b"\x01" + bytes(63))


def forged_token(world):
    """A valid token's claims, under the authority's kid, signed by another key."""
    _, claims, _ = jws_parts(world["token"]("voter-forged"))
    return sign_jws(secrets.token_bytes(32), world["authority"]["kid"], "edgevote-token+jwt", claims)


REJECTIONS = {
    # name: (the request's arguments, made from the world; status; code)
    "malformed_json": (lambda w: {"body": b'{"election": "ref-2026", '}, 400, "malformed_json"),
    "too_large": (lambda w: {"body": json.dumps(ballot(w) | {"pad": "x" * 8192}).encode()}, 413, "too_large"),
    "wrong_content_type": (lambda w: {"body": json.dumps(ballot(w)).encode(), "content_type": "text/plain"}, 415, "unsupported_media_type"),
    "no_content_type": (lambda w: {"body": json.dumps(ballot(w)).encode(), "content_type": None}, 415, "unsupported_media_type"),
    "unknown_election": (lambda w: {"body": json.dumps(ballot(w, election="nope-2026")).encode(), "election": "nope-2026"}, 404, "unknown_election"),
    "invalid_choice": (lambda w: {"body": json.dumps(ballot(w, choice="maybe")).encode()}, 422, "invalid_choice"),
    "forged_token": (lambda w: {"body": json.dumps(ballot(w, token=forged_token(w))).encode()}, 401, "bad_signature"),
    "non_canonical_s": (lambda w: {"body": json.dumps(ballot(w, token=non_canonical_s_token(w))).encode()}, 401, "bad_signature"),
    "small_order_r": (lambda w: {"body": json.dumps(ballot(w, token=small_order_r_token(w))).encode()}, 401, "bad_signature"),
    "unknown_signer": (lambda w: {"body": json.dumps(ballot(w, token=w["stranger_token"])).encode()}, 401, "unknown_key_id"),
    "expired_token": (lambda w: {"body": json.dumps(ballot(w, token=expired_token(w))).encode()}, 403, "token_expired"),
    "token_for_another_election": (lambda w: {"body": json.dumps(ballot(w, token=w["token"]("voter-other", "other.jws"))).encode()}, 403, "wrong_election"),
    "ballot_for_another_election": (lambda w: {"body": json.dumps(ballot(w, election=OTHER_ELECTION)).encode()}, 403, "wrong_election"),
}


@pytest.mark.parametrize("worker", ["edge", "wasm"])
@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rejection_enqueues_nothing(case, worker, workers, world, moto):
    drain_all(moto)
    make, status, code = REJECTIONS[case]
    args = make(world)
    answer = workers[worker].vote(
        args["body"], election=args.get("election", ELECTION),
        content_type=args.get("content_type", "application/json"),
    )
    assert_refused(answer, status, code)
    assert drain_all(moto) == [], f"{case}: a refused ballot reached a queue"


@pytest.mark.parametrize("worker", ["edge", "wasm"])
def test_a_ballot_sent_in_chunks_without_a_length_is_read_whole_and_bounded(worker, workers, world, moto):
    """A body with no declared length is streamed, up to one byte over the largest ballot:
    a ballot in 50-byte chunks is enqueued and receipted, an over-large one refused 413 with
    nothing enqueued."""
    drain_all(moto)
    b = ballot(world, voter="voter-chunked")
    assert_receipted(world, [b], [workers[worker].vote(b, chunked=True)], workers["log"])
    assert_each_once([b], envelopes_of(world, drain_all(moto)))
    padded = json.dumps(ballot(world) | {"pad": "x" * 8192}).encode()
    assert_refused(workers[worker].vote(padded, chunked=True), 413, "too_large")
    assert drain_all(moto) == []


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_a_queue_answer_is_read_within_its_bound(answer, workers, world, odd_sqs):
    """The queue's SendMessage answer, of a declared length, in chunks or compressed, is read
    up to MAX_ANSWER_BYTES (decoded): within it the vote is receipted; past it (a genuine
    answer padded) the answer is refused unread and the vote gets 503 without a receipt (its
    message did reach the queue: a retry with the same nonce is the same vote)."""
    odd_sqs.take()
    odd_sqs.answer = answer
    try:
        b = ballot(world, voter=f"voter-answer-{answer}")
        status, headers, body = workers["odd"].vote(b)
    finally:
        odd_sqs.answer = "sized"
    if ANSWERS[answer][0] == 0:
        assert_receipted(world, [b], [(status, headers, body)], workers["log"])
    else:
        assert status == 503 and body["error"] == "queue_unavailable", (status, body)
        assert "receipt" not in body and headers.get("retry-after") == "2", body
        assert f"{REGION}: refused (HTTP 200)" in body["detail"], body
    assert_each_once([b], envelopes_of(world, odd_sqs.take()))


def test_no_queue_reachable_is_503_without_receipt(workers, world, moto):
    drain_all(moto)
    status, headers, body = workers["down"].vote(ballot(world, voter="voter-down"))
    assert status == 503, (status, body)
    assert headers.get("retry-after") == "2", headers
    assert body["error"] == "queue_unavailable" and "receipt" not in body, body
    assert REGION in body["detail"] and "unreachable" in body["detail"], body
    assert "127.0.0.1" not in body["detail"], "the public detail names no queue address"
    assert drain_all(moto) == []


def test_missing_variable_is_500_naming_it(workers):
    for path in ("/healthz", f"/v1/elections/{ELECTION}/votes"):
        status, _, body = workers["misconfigured"].request("POST" if "votes" in path else "GET", path, b"{}")
        assert status == 500 and body["error"] == "edge_misconfigured", body
        assert body["detail"].startswith("EDGEVOTE_QUEUES"), body


# ---------------------------------------------------------------------------------------------
# group commit: the votes of concurrent requests share SQS messages


def at_once(fn, items):
    """`fn` of every item, each on its own thread, all started together; results in order."""
    start = threading.Barrier(len(items))

    def run_one(item):
        start.wait()
        return fn(item)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(run_one, items))


def batch_id_of(vote_ids):
    """The batch id of an envelope of these votes: the edge id and 22 characters of the SHA-256
    of their vote ids, in order (what the edge core's group sealing names a batch)."""
    digest = hashlib.sha256(b"".join(b64d(v) for v in vote_ids)).digest()
    return f"{EDGE_ID}.{b64e(digest)[:22]}"


def envelopes_of(world, bodies):
    """The ballots of every envelope of the message bodies, each envelope checked against the
    edge's key and its batch id against its edge."""
    out = []
    for body in bodies:
        for line in body.split("\n"):
            verify_ed25519(world["edge"]["x"], line)
            _, payload, _ = jws_parts(line)
            assert payload["batch_id"].startswith(f"{EDGE_ID}."), payload["batch_id"]
            assert payload["votes"], payload
            out.extend(vote["ballot"] for vote in payload["votes"])
    return out


def votes_per_message(bodies):
    """How many votes each message body carries, over all its envelopes."""
    return [sum(len(jws_parts(line)[1]["votes"]) for line in body.split("\n")) for body in bodies]


def assert_receipted(world, sent, answers, log):
    """Every answer is 202 with a receipt signed by the edge key for its own vote."""
    for ballot, (status, _, body) in zip(sent, answers):
        assert status == 202, (status, body, log_tail(log))
        verify_ed25519(world["edge"]["x"], body["receipt"])
        _, claims, _ = jws_parts(body["receipt"])
        assert claims["vote_id"] == body["vote_id"], claims


def assert_each_once(sent, carried):
    """The queue carries every sent ballot exactly once, and nothing else."""
    key = lambda b: b["nonce"]  # noqa: E731  (nonces are random per ballot)
    assert sorted(map(key, carried)) == sorted(map(key, sent)), "a vote is missing or carried twice"
    by_nonce = {b["nonce"]: b for b in sent}
    assert all(by_nonce[b["nonce"]] == b for b in carried), "a carried ballot differs from the sent one"


@pytest.mark.parametrize("worker", ["edge", "wasm"])
def test_concurrent_votes_share_messages_and_each_is_carried_once(worker, workers, world, moto):
    drain_all(moto)
    sent = token_ballots(world["authority_seed"], world["authority"]["kid"], 40, f"burst-{worker}")
    answers = at_once(workers[worker].vote, sent)
    assert_receipted(world, sent, answers, workers["log"])
    messages = drain(moto)
    assert_each_once(sent, envelopes_of(world, messages))
    print("\nVOTES PER MESSAGE", worker, votes_per_message(messages))
    # Two calls in flight at most: votes arriving meanwhile wait and share the next message,
    # sealed into one envelope under one signature (40 votes are far within its bounds).
    assert len(messages) < len(sent), f"{len(messages)} messages for {len(sent)} concurrent votes"
    assert all("\n" not in m for m in messages), "a message of few votes holds one envelope"


@pytest.mark.parametrize("worker", ["edge", "wasm"])
def test_forged_votes_among_concurrent_ones_are_refused_and_sealed_with_none(worker, workers, world, moto):
    """The votes of a message share one envelope signature: a forged vote sent with them must
    be refused and ride along in no envelope, and must cost the genuine ones nothing."""
    drain_all(moto)
    kid = world["authority"]["kid"]
    genuine = token_ballots(world["authority_seed"], kid, 30, f"mixed-{worker}")
    # Tokens under the authority's kid, signed by keys that are not its own.
    forged = token_ballots(secrets.token_bytes(32), kid, 10, f"mixed-forged-{worker}")
    sent = [b for pair in zip(genuine[:10], forged) for b in pair] + genuine[10:]
    answers = at_once(workers[worker].vote, sent)
    forged_nonces = {b["nonce"] for b in forged}
    for ballot, answer in zip(sent, answers):
        if ballot["nonce"] in forged_nonces:
            assert_refused(answer, 401, "bad_signature")
    assert_receipted(world, genuine, [a for b, a in zip(sent, answers) if b["nonce"] not in forged_nonces],
                     workers["log"])
    assert_each_once(genuine, envelopes_of(world, drain(moto)))


def test_a_message_keeps_to_the_configured_vote_bound(workers, world, moto):
    drain_all(moto)
    sent = token_ballots(world["authority_seed"], world["authority"]["kid"], 30, "small")
    answers = at_once(workers["small"].vote, sent)
    assert_receipted(world, sent, answers, workers["log"])
    messages = drain(moto)
    assert max(votes_per_message(messages)) <= SMALL_BATCH, votes_per_message(messages)
    assert len(messages) >= len(sent) // SMALL_BATCH
    assert_each_once(sent, envelopes_of(world, messages))


def test_concurrent_votes_with_no_queue_all_get_503_and_no_receipt(workers, world, moto):
    drain_all(moto)
    sent = token_ballots(world["authority_seed"], world["authority"]["kid"], 20, "down")
    for status, headers, body in at_once(workers["down"].vote, sent):
        assert status == 503 and body["error"] == "queue_unavailable", (status, body)
        assert "receipt" not in body and headers.get("retry-after") == "2", body
    assert drain_all(moto) == []


def hang_up_after(port: int, ballot: dict, seconds: float) -> None:
    """Sends `ballot` as a vote and closes the connection after `seconds`, unanswered."""
    body = json.dumps(ballot).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"POST /v1/elections/{ELECTION}/votes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        time.sleep(seconds)
        # Linger 0: the close resets the connection, as a client that vanishes does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# Who hangs up when, in SLOW_SQS_HOLD_SECS from the moment the group's votes are sent
# (None: waits for its answer): the two votes holding both calls, the vote first in line, and
# the three behind it.
HANG_UPS = {
    # before a call is free, so the wake-up "you send next" reaches a request that is gone
    "first_in_line": {"holding": None, "first": 0.3},
    # after their own message, while the message carrying the votes behind is being sent
    "both_senders": {"holding": 1.5, "first": None},
    # every vote ahead is gone before a call is free: no request of a finished message is left
    # to send the next one, nor the one woken to
    "everyone_ahead": {"holding": 0.5, "first": 0.3},
}


@pytest.mark.parametrize("case", sorted(HANG_UPS))
def test_a_client_hanging_up_strands_no_other_vote(case, workers, world, slow_sqs):
    """Two votes take both calls (the queue holds each SendMessage SLOW_SQS_HOLD_SECS); then
    one vote waits first in line and three behind it. Some clients hang up (HANG_UPS): the
    votes behind must be sent and receipted all the same, and every vote, answered or not,
    carried exactly once."""
    slow_sqs.take()
    hold = SLOW_SQS_HOLD_SECS
    port = workers["slow"].port
    seed, kid = world["authority_seed"], world["authority"]["kid"]
    groups = {name: token_ballots(seed, kid, n, f"{case}-{name}")
              for name, n in (("holding", 2), ("first", 1), ("behind", 3))}
    answered, gone = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for name in ("holding", "first", "behind"):
            hang_up = HANG_UPS[case].get(name)
            for b in groups[name]:
                if hang_up is None:
                    answered.append((b, pool.submit(workers["slow"].vote, b)))
                else:
                    gone.append(pool.submit(hang_up_after, port, b, hold * hang_up))
            time.sleep(hold * 0.2)
        answers = [f.result(timeout=30) for _, f in answered]
        for f in gone:
            f.result(timeout=30)
    assert_receipted(world, [b for b, _ in answered], answers, workers["log"])
    # The votes whose clients hung up are in the queue too (a retry with the same nonce would
    # be the same vote); wait for the last message to arrive.
    expected = [b for name in groups for b in groups[name]]
    deadline = time.monotonic() + 10
    bodies = slow_sqs.take()
    while len(envelopes_of(world, bodies)) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.1)
        bodies += slow_sqs.take()
    assert_each_once(expected, envelopes_of(world, bodies))


@pytest.fixture(scope="module")
def collector(world, moto, tmp_path_factory):
    """`edgevote collector run` draining the `counted` worker's queue on moto into an embedded
    store, with its HTTP server on a free port."""
    d = tmp_path_factory.mktemp("collector")
    port = free_port()
    counted = moto["counted"]
    (d / "collector.toml").write_text(f"""region = "{REGION}"
keyset_path = "{world['keyset_path']}"
election_paths = ["{world['dir'] / 'election.jws'}"]
listen_addr = "127.0.0.1:{port}"

[queue]
backend = "sqs"
queue_url = "{counted['edgevote-counted']}"
dead_letter_queue_url = "{counted['edgevote-counted-dlq']}"
region = "{REGION}"
endpoint_url = "{moto['endpoint']}"

[store]
backend = "embedded"
path = "{d / 'store.redb'}"
""")
    log = d / "collector.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN), "collector", "run", "--config", str(d / "collector.toml")],
                                cwd=d, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **AWS_ENV})
    try:
        client = Http(port)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert proc.poll() is None, f"the collector exited ({proc.returncode}):\n{log_tail(log)}"
            with contextlib.suppress(OSError):
                if client.request("GET", "/healthz", timeout=5)[0] == 200:
                    break
            assert time.monotonic() < deadline, f"the collector did not answer on {port}:\n{log_tail(log)}"
            time.sleep(0.2)
        yield {"http": client, "log": log}
    finally:
        stop(proc)


def test_concurrent_votes_through_a_collector_are_each_counted_once(workers, world, collector):
    """The promise end to end: 30 voters at once, and one more voter whose client sends the
    same ballot five times at once (a retry storm), through the Worker's shared messages, the
    queue and a real collector: every receipt's vote is stored for its voter, and the final
    tally counts 31 ballots, the repeated one once."""
    seed, kid = world["authority_seed"], world["authority"]["kid"]
    sent = token_ballots(seed, kid, 30, "counted")
    repeated = token_ballots(seed, kid, 1, "counted-repeat")[0]
    ballots = sent + [repeated] * 5
    answers = at_once(workers["counted"].vote, ballots)
    assert_receipted(world, ballots, answers, workers["log"])
    assert len({body["vote_id"] for _, _, body in answers[30:]}) == 1, "a retry is the same vote"
    http = collector["http"]
    deadline = time.monotonic() + 60
    while True:
        status, _, tally = http.request("GET", f"/v1/results/{ELECTION}/final")
        if status == 200 and tally["ballots"] >= len(sent) + 1:
            break
        assert time.monotonic() < deadline, (status, tally, log_tail(collector["log"]))
        time.sleep(0.5)
    assert (tally["ballots"], tally["voters"], tally["counts"]) == (31, 31, {"yes": 31}), tally
    for ballot, (_, _, body) in zip(ballots, answers):
        voter = jws_parts(ballot["token"])[1]["sub"]
        status, _, found = http.request(
            "GET", f"/v1/elections/{ELECTION}/votes/{body['vote_id']}?voter={voter}")
        assert status == 200, (status, found)
        assert (found["stored"], found["counted"], found["vote_id"]) == (True, True, body["vote_id"]), found
