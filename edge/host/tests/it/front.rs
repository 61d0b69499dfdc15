//! The HTTP front as a plain-socket client meets it: requests HTTP allows but a careless host
//! breaks on (HTTP/1.0 without Host, `Expect: 100-continue`, pipelining, a client that closes
//! its sending side), and the group commit's size cut under concurrent votes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture::{Deployment, Running, now_secs};
use crate::http::{ballot, parse_reply};

/// Sends `bytes`, optionally closes the sending side, and reads until the server closes (or
/// `wait` passes); returns everything read.
async fn exchange(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    half_close: bool,
    wait: Duration,
) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

fn vote_head(extra: &str, body_len: usize) -> String {
    format!(
        "POST /v1/elections/open/votes HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n{extra}Content-Length: {body_len}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_without_host_is_served_with_the_public_authority() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    let raw = exchange(
        edge.addr,
        b"GET /v1/keys HTTP/1.0\r\n\r\n",
        false,
        Duration::from_secs(10),
    )
    .await;
    let reply = parse_reply(raw.as_bytes());
    assert_eq!(reply.status, 200, "{raw}");
    assert!(reply.body.contains("\"keys\""), "{raw}");
    // The same without Host over HTTP/1.1 is the client's mistake: 400, never a 5xx.
    let raw = exchange(
        edge.addr,
        b"GET /v1/keys HTTP/1.1\r\nConnection: close\r\n\r\n",
        false,
        Duration::from_secs(10),
    )
    .await;
    let reply = parse_reply(raw.as_bytes());
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (400, Some("missing_host")),
        "{raw}"
    );
    let metrics = &edge.host.metrics;
    assert_eq!(
        metrics.server_errors_at(edgevote_edge_host::metrics::Stage::Host),
        0
    );
    assert_eq!(
        metrics
            .component_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_over_the_limit_is_refused_before_the_body() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    // The body is never sent: the answer must come from the head alone, with no 100 Continue.
    let head = vote_head("Expect: 100-continue\r\n", 50_000_000);
    let raw = exchange(edge.addr, head.as_bytes(), false, Duration::from_secs(5)).await;
    assert!(!raw.contains("100 Continue"), "invited a 50 MB body: {raw}");
    let reply = parse_reply(raw.as_bytes());
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (413, Some("too_large")),
        "{raw}"
    );
    // A ballot-sized body under Expect gets its 100 Continue, then its receipt.
    let body = ballot("open", &d.token("open", "x1", now_secs() + 600), "yes", 1);
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let head = vote_head("Expect: 100-continue\r\nConnection: close\r\n", body.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut interim))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&interim[..n]).starts_with("HTTP/1.1 100 Continue"));
    stream.write_all(&body).await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    let raw = format!(
        "{}{}",
        String::from_utf8_lossy(&interim[..n]),
        String::from_utf8_lossy(&rest)
    );
    let final_reply = raw
        .split_once("\r\n\r\n")
        .map(|(_, r)| r)
        .unwrap_or_default();
    assert_eq!(parse_reply(final_reply.as_bytes()).status, 202, "{raw}");
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_half_closed_requests_are_all_answered() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    let body = ballot("open", &d.token("open", "p1", now_secs() + 600), "yes", 1);
    // A vote, a read and a malformed request in one write; the client then closes its side.
    let pipelined = format!(
        "{}{}GET /v1/keys HTTP/1.1\r\nHost: edge\r\n\r\nGET /v1/keys HTTP/1.1\r\n\r\n",
        vote_head("", body.len()),
        String::from_utf8_lossy(&body)
    );
    let raw = exchange(
        edge.addr,
        pipelined.as_bytes(),
        true,
        Duration::from_secs(10),
    )
    .await;
    // Status lines start a line; a body may mention "HTTP/1.1" too.
    let statuses: Vec<&str> = raw
        .lines()
        .filter_map(|line| line.strip_prefix("HTTP/1.1 "))
        .filter_map(|rest| {
            rest.get(..3)
                .filter(|_| rest.as_bytes().get(3) == Some(&b' '))
        })
        .collect();
    assert_eq!(statuses, ["202", "200", "400"], "{raw}");
    assert!(raw.contains("missing_host"), "{raw}");
    assert_eq!(edge.queue.votes().await.len(), 1);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_cut_by_size_answers_every_vote_without_waiting_for_more() {
    let d = Deployment::new();
    let mut config = d.config(false);
    // Each host-sealed vote adds about 700 bytes: 4096 bytes cut six votes into two messages,
    // so one vote is carried into the next batch.
    config.group_commit.max_message_bytes = 4096;
    config.group_commit.max_wait_ms = 50;
    let edge = Running::start_with(&d, config).await;
    let mut votes = tokio::task::JoinSet::new();
    for i in 0..6u8 {
        let (addr, body) = (
            edge.addr,
            ballot(
                "open",
                &d.token("open", &format!("g{i}"), now_secs() + 600),
                "yes",
                i,
            ),
        );
        votes.spawn(async move {
            // A bound on liveness, not speed: a carried vote used to wait for a seventh arrival
            // that never came, and the vote behind it was dropped with a 503.
            tokio::time::timeout(
                Duration::from_secs(10),
                crate::http::vote(addr, "open", &body),
            )
            .await
            .map(|reply| (reply.status, reply.body))
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = votes.join_next().await {
        answers.push(answer.unwrap().expect("a vote was never answered"));
    }
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
    }
    assert_eq!(edge.queue.votes().await.len(), 6);
    assert!(
        edge.host
            .metrics
            .group_commits
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2,
        "the size bound must have cut the batch"
    );
    use edgevote_edge_host::metrics::CommitClose;
    assert!(
        edge.host.metrics.commit_closes(CommitClose::Full) >= 1,
        "a window cut by the size bound counts as closed full"
    );
    edge.shutdown().await;
}

/// While both commit slots wait on a slow queue, votes arriving one by one after the window
/// all join the batch waiting for a slot: one message for them, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_arriving_while_the_queue_is_slow_share_one_message() {
    let d = Deployment::new();
    let mut config = d.config(false);
    config.group_commit.max_wait_ms = 1;
    let edge = Running::start_with(&d, config).await;
    edge.queue.hold_sends();
    let mut votes = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let body = ballot(
            "open",
            &d.token("open", &format!("s{i}"), now_secs() + 600),
            "yes",
            i,
        );
        let addr = edge.addr;
        votes.spawn(async move { crate::http::vote(addr, "open", &body).await.status });
        // Well past the 1 ms window: without the top-up each would be its own message.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    edge.queue.release_sends();
    while let Some(status) = votes.join_next().await {
        assert_eq!(status.unwrap(), 202);
    }
    assert_eq!(edge.queue.votes().await.len(), 8);
    let commits = edge
        .host
        .metrics
        .group_commits
        .load(std::sync::atomic::Ordering::Relaxed);
    // The first two votes take the two commit slots; the six after them share the third.
    assert_eq!(
        commits, 3,
        "eight votes over a held queue took {commits} messages"
    );
    edge.shutdown().await;
}

/// Votes sent `every` apart until `done` says so (checked before each vote), at most `max`;
/// returns their answers' statuses.
async fn trickle(
    d: &Deployment,
    edge: &Running,
    first: usize,
    max: usize,
    every: Duration,
    mut done: impl FnMut() -> bool,
) -> Vec<u16> {
    let mut votes = tokio::task::JoinSet::new();
    for i in first..first + max {
        if done() {
            break;
        }
        let token = d.token("open", &format!("t{i}"), now_secs() + 600);
        let body = ballot("open", &token, "yes", (i % 251) as u8);
        let addr = edge.addr;
        votes.spawn(async move { crate::http::vote(addr, "open", &body).await.status });
        tokio::time::sleep(every).await;
    }
    votes.join_all().await
}

/// An overloaded edge (here its queue: every send takes 40 ms, so most commits lag past
/// `overload_lag_ms`) stretches its group-commit window: the same trickle of votes then takes
/// far fewer messages, every vote is still answered only once durable and is in the queue,
/// and the window comes back once the sends are quick again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_edge_stretches_its_window_and_takes_it_back() {
    let d = Deployment::new();
    let mut config = stretching(&d);
    config.group_commit.overload_backlog_votes = 0; // the lag trigger instead
    config.group_commit.overload_lag_ms = 30;
    let edge = Running::start_with(&d, config).await;
    let metrics = Arc::clone(&edge.host.metrics);
    let window = || window_now(&edge);
    assert_eq!(window(), "0.001");
    edge.queue.slow_sends(Duration::from_millis(40));
    let stretched = || metrics.group_commit_stretches.load(Ordering::Relaxed) > 0;
    // Bounded: a vote every 5 ms for at most 4 s; the edge must notice within it.
    let mut statuses = trickle(&d, &edge, 0, 800, Duration::from_millis(5), stretched).await;
    assert!(stretched(), "the edge never counted as overloaded");
    assert_eq!(window(), "0.1");
    let (first, commits_before) = (
        statuses.len(),
        metrics.group_commits.load(Ordering::Relaxed),
    );
    // Stretched: 100 votes over half a second. Unstretched, two commit slots of 40 ms would
    // take a message per 20 ms, about 25 messages; 100 ms windows take about six.
    statuses.extend(trickle(&d, &edge, first, 100, Duration::from_millis(5), || false).await);
    let stretched_commits = metrics.group_commits.load(Ordering::Relaxed) - commits_before;
    assert!(
        stretched_commits <= 12,
        "100 votes took {stretched_commits} messages with the stretched window"
    );
    edge.queue.slow_sends(Duration::ZERO);
    let first = statuses.len();
    let recovered = || window() == "0.001";
    statuses.extend(trickle(&d, &edge, first, 400, Duration::from_millis(10), recovered).await);
    assert!(recovered(), "the window did not come back: {}", window());
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    assert_eq!(edge.queue.votes().await.len(), statuses.len());
    edge.shutdown().await;
}

/// The backlog gauges count every vote request from its head to its answer, and every vote in
/// group commit until its outcome: with the queue held, the votes are in flight and in group
/// commit; once answered (accepted or refused) both gauges are back to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_gauges_count_each_vote_until_it_is_answered() {
    let d = Deployment::new();
    let edge = Running::start_with(&d, d.config(false)).await;
    let metrics = Arc::clone(&edge.host.metrics);
    let gauges = || {
        let text = edge.host.metrics_text();
        (
            series(&text, "edgevote_edge_votes_in_flight", "").to_owned(),
            series(&text, "edgevote_edge_votes_in_group_commit", "").to_owned(),
        )
    };
    assert_eq!(gauges(), ("0".to_owned(), "0".to_owned()));
    edge.queue.hold_sends();
    let mut votes = tokio::task::JoinSet::new();
    for i in 0..6 {
        let token = d.token("open", &format!("held{i}"), now_secs() + 600);
        let body = ballot("open", &token, "yes", i);
        let addr = edge.addr;
        votes.spawn(async move { crate::http::vote(addr, "open", &body).await.status });
    }
    // Bounded: at most 5 s for six votes to reach the held queue.
    for _ in 0..500 {
        if gauges() == ("6".to_owned(), "6".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gauges(), ("6".to_owned(), "6".to_owned()));
    assert_eq!(
        metrics.vote_backlog(),
        0,
        "every vote in flight is in group commit"
    );
    edge.queue.release_sends();
    assert_eq!(votes.join_all().await, vec![202; 6]);
    let refused = ballot("open", "not-a-token", "yes", 0);
    assert_eq!(
        crate::http::vote(edge.addr, "open", &refused).await.status,
        400
    );
    assert_eq!(gauges(), ("0".to_owned(), "0".to_owned()));
    edge.shutdown().await;
}

/// An edge whose votes pile up before group commit (here one instance, and a queue whose
/// sends take 10 ms: votes wait for the instance) counts as overloaded under
/// `overload_backlog_votes` and stretches its window; after a lull the window comes back, and
/// every vote was answered only once durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_stretches_the_window_and_a_lull_takes_it_back() {
    let d = Deployment::new();
    let edge = Running::start_with(&d, backlogged(&d)).await;
    let metrics = Arc::clone(&edge.host.metrics);
    let window = || window_now(&edge);
    edge.queue.slow_sends(Duration::from_millis(10));
    let stretched = || metrics.group_commit_stretches.load(Ordering::Relaxed) > 0;
    // Bounded: a vote every 5 ms, at most 300; about 90 a second get through.
    let mut statuses = trickle(&d, &edge, 0, 300, Duration::from_millis(5), stretched).await;
    assert!(stretched(), "a backlog of votes never counted as overload");
    edge.queue.slow_sends(Duration::ZERO);
    tokio::time::sleep(pace_period() + Duration::from_millis(50)).await;
    let first = statuses.len();
    let recovered = || window() == "0.001";
    statuses.extend(trickle(&d, &edge, first, 20, Duration::from_millis(50), recovered).await);
    assert!(recovered(), "the window did not come back: {}", window());
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    assert_eq!(edge.queue.votes().await.len(), statuses.len());
    edge.shutdown().await;
}

/// Once the backlog of an overloaded edge is gone, its windows are short at once, before a
/// period of commits tells the state so: votes one at a time (no backlog) while the state is
/// still overloaded open no stretched window. Otherwise every voter of that period would wait
/// the long window on an edge that already keeps up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_edge_with_no_backlog_left_opens_short_windows() {
    let d = Deployment::new();
    let edge = Running::start_with(&d, backlogged(&d)).await;
    let metrics = Arc::clone(&edge.host.metrics);
    let window = || window_now(&edge);
    let stretched_windows = || {
        metrics
            .group_commit_stretched_windows
            .load(Ordering::Relaxed)
    };
    let mut statuses = Vec::new();
    // The drain of the backlog can end a period that finds the edge caught up (its last
    // commits see no backlog); then the check below cannot tell anything, and the edge is
    // overloaded again. Bounded: at most 8 rounds.
    let mut checked = false;
    let stretches = || metrics.group_commit_stretches.load(Ordering::Relaxed);
    for _round in 0..8 {
        edge.queue.slow_sends(Duration::from_millis(10));
        let overloaded = || window() == "0.1";
        let (first, stretches_before) = (statuses.len(), stretches());
        statuses.extend(trickle(&d, &edge, first, 300, Duration::from_millis(5), overloaded).await);
        assert!(
            stretches() > stretches_before,
            "a backlog of votes never counted as overload"
        );
        edge.queue.slow_sends(Duration::ZERO);
        // The trickle has returned: every vote answered, no backlog (the last of them waited
        // stretched windows: the one instance holds each vote until its commit).
        let before = stretched_windows();
        if !overloaded() {
            continue;
        }
        assert!(before > 0, "no window opened stretched while overloaded");
        for i in 0..3 {
            let n = statuses.len();
            let token = d.token("open", &format!("t{n}"), now_secs() + 600);
            let body = ballot("open", &token, "yes", i);
            statuses.push(crate::http::vote(edge.addr, "open", &body).await.status);
        }
        assert_eq!(
            stretched_windows(),
            before,
            "a vote with no backlog waited a stretched window"
        );
        checked = true;
        break;
    }
    assert!(checked, "the edge caught up before every check");
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    assert_eq!(edge.queue.votes().await.len(), statuses.len());
    edge.shutdown().await;
}

/// [`stretching`] with one instance and a backlog trigger of 4 votes (out at 2).
fn backlogged(d: &Deployment) -> edgevote_edge_host::config::HostConfig {
    let mut config = stretching(d);
    config.max_concurrent_requests = 1;
    config.group_commit.overload_backlog_votes = 4;
    config
}

/// An edge whose group-commit window is 1 ms, stretched to 100 ms (well under
/// `pace::PERIOD`, so a stretched edge is never taken for an idle one) once a trigger is set;
/// no rate limits.
fn stretching(d: &Deployment) -> edgevote_edge_host::config::HostConfig {
    let mut config = d.config(false);
    config.rate_limit.enabled = false;
    config.group_commit.max_wait_ms = 1;
    config.group_commit.max_wait_overloaded_ms = 100;
    config
}

/// The edge's group-commit window now, as its gauge says it (seconds).
fn window_now(edge: &Running) -> String {
    series(
        &edge.host.metrics_text(),
        "edgevote_edge_group_commit_window_seconds",
        "",
    )
    .to_owned()
}

/// A quarter second: the period in which the pace decides.
fn pace_period() -> Duration {
    edgevote_edge_host::pace::PERIOD
}

/// A slow queue shows in the edge's latency histograms: the send, the group commit that waited
/// on it, the vote's time in group commit (in its store phase) and the vote request that
/// waited on that land above 100 ms, nothing below, and each counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_queue_send_shows_in_the_latency_histograms() {
    let d = Deployment::new();
    let edge = Running::start_with(&d, d.config(false)).await;
    edge.queue.hold_sends();
    let body = ballot("open", &d.token("open", "slow", now_secs() + 600), "yes", 0);
    let addr = edge.addr;
    let vote = tokio::spawn(async move { crate::http::vote(addr, "open", &body).await.status });
    tokio::time::sleep(Duration::from_millis(150)).await;
    edge.queue.release_sends();
    assert_eq!(vote.await.unwrap(), 202);
    let metrics = edge.host.metrics_text();
    for name in [
        "edgevote_edge_queue_send_seconds",
        "edgevote_edge_group_commit_seconds",
        "edgevote_edge_vote_seconds",
        "edgevote_edge_vote_commit_seconds",
    ] {
        let bucket =
            |le: &str| series(&metrics, &format!("{name}_bucket"), &format!("le=\"{le}\""));
        assert_eq!(bucket("0.1"), "0", "{name} below 100 ms: {metrics}");
        assert_eq!(bucket("0.25"), "1", "{name} at most 250 ms: {metrics}");
        assert_eq!(bucket("+Inf"), "1", "{metrics}");
        assert_eq!(
            series(&metrics, &format!("{name}_count"), ""),
            "1",
            "{metrics}"
        );
    }
    // Past the window's deadline the vote waited in the store phase (the send), not for its
    // window to close late, for a slot or in sealing; each phase counts the one vote once.
    let phase = |phase: &str, le: &str| {
        series(
            &metrics,
            "edgevote_edge_vote_commit_phase_seconds_bucket",
            &format!("phase=\"{phase}\",le=\"{le}\""),
        )
    };
    // Its one window closed when its time was up, and that is the only close counted.
    for (reason, count) in [("window", "1"), ("full", "0"), ("backlog_fell", "0")] {
        let label = format!("reason=\"{reason}\"");
        let closes = series(&metrics, "edgevote_edge_group_commit_closes_total", &label);
        assert_eq!(closes, count, "{reason}: {metrics}");
    }
    assert_eq!(phase("store", "0.1"), "0", "{metrics}");
    assert_eq!(phase("store", "0.25"), "1", "{metrics}");
    for quick in ["late", "slot", "seal"] {
        assert_eq!(phase(quick, "0.1"), "1", "{quick}: {metrics}");
        assert_eq!(phase(quick, "+Inf"), "1", "{quick}: {metrics}");
    }
    edge.shutdown().await;
}

/// The value of the first sample of `name` whose labels contain `label`.
fn series<'a>(metrics: &'a str, name: &str, label: &str) -> &'a str {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_in_the_backlog_until_one_closes() {
    let d = Deployment::new();
    let mut config = d.config(false);
    config.http.max_connections = 2;
    let edge = Running::start_with(&d, config).await;
    let read = b"GET /v1/keys HTTP/1.1\r\nHost: edge\r\n\r\n";
    // Two keep-alive connections, each answered once and kept open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
        stream.write_all(read).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    assert_eq!(
        edge.host
            .metrics
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // A third connects (the kernel's backlog takes it) but is not served while two are open.
    let third = tokio::spawn(exchange(
        edge.addr,
        b"GET /v1/keys HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n",
        false,
        Duration::from_secs(20),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a connection over the cap was served");
    drop(held.pop());
    let reply = third.await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    edge.shutdown().await;
}

/// An HTTP/2 client with prior knowledge: one connection carries votes of several voters and a
/// read at once (multiplexed streams), each answered as over HTTP/1.1; every vote is committed
/// once, and the connection is counted as HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_multiplexes_votes_and_reads_on_one_connection() {
    use http_body_util::{BodyExt, Full};
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    let stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let send = |method: &str, uri: String, body: Vec<u8>| {
        let mut sender = sender.clone();
        let request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        async move {
            let response = sender.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let base = format!("http://{}", edge.addr);
    let mut answers = Vec::new();
    for voter in 0..4u8 {
        let token = d.token("open", &format!("h2-{voter}"), now_secs() + 600);
        let uri = format!("{base}/v1/elections/open/votes");
        answers.push(tokio::spawn(send(
            "POST",
            uri,
            ballot("open", &token, "yes", voter),
        )));
    }
    answers.push(tokio::spawn(send(
        "GET",
        format!("{base}/v1/keys"),
        Vec::new(),
    )));
    let mut statuses = Vec::new();
    for answer in answers {
        let (status, body) = answer.await.unwrap();
        if status == 202 {
            assert!(body.contains("\"receipt\""), "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [202, 202, 202, 202, 200]);
    assert_eq!(edge.queue.votes().await.len(), 4);
    let metrics = edge.host.metrics_text();
    let http2 = series(&metrics, "edgevote_edge_http2_connections_total", "");
    assert_eq!(http2, "1", "{metrics}");
    edge.shutdown().await;
}
