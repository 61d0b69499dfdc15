"""CPU per vote of the Cloudflare Worker edge under workerd: a benchmark, not a test.

    .venv/bin/python tests/worker/bench_worker.py [--votes N] [--concurrency C]
        [--sqs-hold-ms MS] [--batch-max-votes N] [--json]

One workerd process runs the built bundle (edge/worker/build/, `bash scripts/worker.sh`) as two
workers that differ only in EDGEVOTE_CRYPTO: `webcrypto` (the default: Ed25519 through the
platform's WebCrypto) and `wasm` (the same signatures in the bundle's own Wasm arithmetic).
Their queue is a local stand-in that answers every SendMessage (after `--sqs-hold-ms`, as a
real queue takes a while), so the figure is the Worker's own work. Votes of distinct voters
(tokens signed here with the authority key) go to each worker in turn from `--concurrency`
clients at once (one: one vote at a time), and the CPU time workerd spent (utime + stime from
/proc/PID/stat) is divided by the votes; a read (GET of the election, no signature) gives
the per-request floor. With several clients, concurrent votes share SQS messages (the
isolate's group commit, up to `--batch-max-votes` per message: EDGEVOTE_BATCH_MAX_VOTES; 1
turns it off); the stand-in counts messages, envelopes (the edge signatures a collector
verifies) and queue bytes per vote. Prints each figure and the ratio webcrypto / wasm. Nothing
is asserted: speed is for benchmarks.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import test_worker as t  # noqa: E402  (the fixtures' helpers: keys, config, HTTP client)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Votes measured right after an isolate starts.
FIRST_VOTES = 50


def cpu_secs(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat; after the ")" they are the 12th and 13th.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def world(d: pathlib.Path, cli: pathlib.Path) -> dict:
    keys = d / "keys"
    t.run(cli, "keys", "gen", "--keys", keys, "--role", "authority")
    t.run(cli, "keys", "gen", "--keys", keys, "--role", "edge", "--edge", t.EDGE_ID, "--region", t.REGION)
    t.run(cli, "election", "create", "--keys", keys, "--id", t.ELECTION, "--title", "Worker bench",
          "--option", "yes:Yes", "--option", "no:No", "--opens", "now", "--closes", "+1h",
          "--out", d / "election.jws")
    keyset = json.loads((keys / "keyset.json").read_text())
    by_role = {k["edgevote_role"]: k for k in keyset["keys"]}
    authority = by_role["authority"]
    seed = t.b64d(json.loads((keys / "private" / f"{authority['kid']}.jwk").read_text())["d"])
    return {
        "keyset_text": (keys / "keyset.json").read_text(),
        "election": (d / "election.jws").read_text().strip(),
        "edge_key_text": (keys / "private" / f"{by_role['edge']['kid']}.jwk").read_text(),
        "authority_kid": authority["kid"],
        "authority_seed": seed,
    }


def ballots(w: dict, count: int, tag: str) -> list:
    # The authority key was made a moment ago: tokens issued since (see world()).
    return t.token_ballots(w["authority_seed"], w["authority_kid"], count, tag)


def measure(pid: int, requests, concurrency: int = 1) -> float:
    """CPU microseconds workerd spent per request of `requests` (callables), run by
    `concurrency` clients at once, each in order."""
    before = cpu_secs(pid)
    if concurrency <= 1:
        run_all(requests)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            for done in [pool.submit(run_all, requests[i::concurrency]) for i in range(concurrency)]:
                done.result()
    return (cpu_secs(pid) - before) * 1e6 / max(1, len(requests))


def run_all(requests):
    for request in requests:
        request()


def vote(client: t.Http, b: dict):
    def send():
        status, _, body = client.vote(b)
        assert status == 202, f"vote answered {status}: {body}"
    return send


def forged(client: t.Http, b: dict):
    """The vote with one bit of its token's signature flipped: refused after verification."""
    header, payload, signature = b["token"].split(".")
    raw = bytearray(t.b64d(signature))
    raw[5] ^= 1
    bad = {**b, "token": f"{header}.{payload}.{t.b64e(bytes(raw))}"}

    def send():
        status, _, body = client.vote(bad)
        assert status == 401, f"forged vote answered {status}: {body}"
    return send


def read(client: t.Http):
    def send():
        status, _, body = client.request("GET", f"/v1/elections/{t.ELECTION}")
        assert status == 200, f"read answered {status}: {body}"
    return send


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1000, help="votes per worker and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median kept)")
    parser.add_argument("--concurrency", type=int, default=1, help="clients sending votes at once")
    parser.add_argument("--sqs-hold-ms", type=int, default=0, help="how long the stand-in queue takes to answer")
    parser.add_argument("--batch-max-votes", type=int, default=None,
                        help="EDGEVOTE_BATCH_MAX_VOTES of both workers (default: the worker's own)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    for name in t.BUNDLE:
        if not (t.BUILD / name).is_file():
            print(f"bench_worker: no bundle at {t.BUILD / name}: run `bash scripts/worker.sh`", file=sys.stderr)
            return 2
    if not t.WORKERD.exists():
        print(f"bench_worker: no workerd at {t.WORKERD}: run `bash scripts/worker.sh tools`", file=sys.stderr)
        return 2
    cli = t.BIN
    if not cli.is_file():
        print(f"bench_worker: no edgevote CLI at {cli}: cargo build -p edgevote", file=sys.stderr)
        return 2
    d = pathlib.Path(tempfile.mkdtemp(prefix="edgevote-worker-bench-"))
    sqs = t.StandInSqs(hold_secs=args.sqs_hold_ms / 1000)
    proc = None
    try:
        w = world(d, cli)
        time.sleep(2)  # tokens must be issued after the authority key's validity starts
        for name in t.BUNDLE:
            shutil.copy(t.BUILD / name, d / name)
        queue = sqs.queue_url()
        base = {
            "EDGEVOTE_KEYSET": w["keyset_text"],
            "EDGEVOTE_ELECTIONS": w["election"] + "\n",
            "EDGEVOTE_EDGE_KEY": w["edge_key_text"],
            "EDGEVOTE_EDGE_ID": t.EDGE_ID,
            "EDGEVOTE_REGION": t.REGION,
            "EDGEVOTE_QUEUES": f"{t.REGION}={queue}",
            "AWS_ACCESS_KEY_ID": t.AWS_ENV["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": t.AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        }
        if args.batch_max_votes is not None:
            base["EDGEVOTE_BATCH_MAX_VOTES"] = str(args.batch_max_votes)
        variants = {"webcrypto": {**base, "EDGEVOTE_CRYPTO": "webcrypto"},
                    "wasm": {**base, "EDGEVOTE_CRYPTO": "wasm"}}
        ports = {name: t.free_port() for name in variants}
        (d / "config.capnp").write_text(t.workerd_config(variants, ports))
        log = d / "workerd.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(t.WORKERD), "serve", str(d / "config.capnp")],
                                    cwd=d, stdout=out, stderr=subprocess.STDOUT)
        clients = {name: t.Http(port) for name, port in ports.items()}
        deadline = time.monotonic() + t.READY_TIMEOUT
        for name, client in clients.items():
            while True:
                if proc.poll() is not None:
                    print(f"bench_worker: workerd exited:\n{t.log_tail(log)}", file=sys.stderr)
                    return 1
                try:
                    client.request("GET", "/healthz", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        print(f"bench_worker: {name} did not answer:\n{t.log_tail(log)}", file=sys.stderr)
                        return 1
                    time.sleep(0.2)
        print(f"bench_worker: {args.rounds} rounds of {args.votes} votes, forged votes and reads per worker ...", file=sys.stderr)
        figures = {name: {"vote_us": [], "forged_us": [], "read_us": [], "messages_per_vote": [],
                          "envelopes_per_vote": [], "queue_bytes_per_vote": []}
                   for name in variants}
        first_votes = {}
        # The first votes of a new isolate (config, key import, Wasm still in V8's baseline
        # tier): what a Worker pays after each eviction.
        for name, client in clients.items():
            first = [vote(client, b) for b in ballots(w, FIRST_VOTES, f"first-{name}")]
            first_votes[name] = measure(proc.pid, first)
        for r in range(args.rounds):
            for name, client in clients.items():
                fresh = ballots(w, 2 * args.votes, f"{name}-{r}")
                votes = [vote(client, b) for b in fresh[: args.votes]]
                sqs.take()
                figures[name]["vote_us"].append(measure(proc.pid, votes, args.concurrency))
                bodies = sqs.take()
                figures[name]["messages_per_vote"].append(len(bodies) / args.votes)
                # Each envelope is one edge signature a collector verifies.
                envelopes = sum(body.count("\n") + 1 for body in bodies)
                figures[name]["envelopes_per_vote"].append(envelopes / args.votes)
                queue_bytes = sum(len(body) for body in bodies)
                figures[name]["queue_bytes_per_vote"].append(queue_bytes / args.votes)
                bad = [forged(client, b) for b in fresh[args.votes :]]
                figures[name]["forged_us"].append(measure(proc.pid, bad, args.concurrency))
                reads = [read(client)] * args.votes
                figures[name]["read_us"].append(measure(proc.pid, reads, args.concurrency))
            print(f"bench_worker: round {r + 1}/{args.rounds} done", file=sys.stderr)
        median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        report = {name: {k: median(v) for k, v in f.items()} for name, f in figures.items()}
        for name, us in first_votes.items():
            report[name]["first_votes_us"] = us
        report["webcrypto_over_wasm"] = report["webcrypto"]["vote_us"] / report["wasm"]["vote_us"]
        report["votes"], report["rounds"] = args.votes, args.rounds
        report["concurrency"], report["sqs_hold_ms"] = args.concurrency, args.sqs_hold_ms
        report["batch_max_votes"] = args.batch_max_votes
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            batch = "the worker's default" if args.batch_max_votes is None else args.batch_max_votes
            print(f"Worker under workerd ({t.WORKERD.name}), {args.votes} votes x {args.rounds} rounds, "
                  f"{args.concurrency} clients at once, queue answering after {args.sqs_hold_ms} ms, "
                  f"at most {batch} votes per message; CPU of workerd per request (median):")
            for name in variants:
                f = report[name]
                print(f"  {name:<10} vote {f['vote_us']:7.1f} us   first {FIRST_VOTES} votes of an isolate {f['first_votes_us']:7.1f} us   forged vote (verified, refused) {f['forged_us']:7.1f} us   read (no signature) {f['read_us']:6.1f} us   messages/vote {f['messages_per_vote']:.3f}   envelopes/vote {f['envelopes_per_vote']:.3f}   queue bytes/vote {f['queue_bytes_per_vote']:.0f}")
            print(f"  webcrypto / wasm, per vote: {report['webcrypto_over_wasm']:.2f}x")
        return 0
    finally:
        if proc is not None:
            t.stop(proc)
        sqs.shutdown()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
