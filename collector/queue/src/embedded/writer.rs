//! The embedded queue's one writer: every change (send, receive, delete, visibility, dead
//! letter) goes through one thread that applies whatever changes wait in one redb transaction
//! and commits them with one fsync.
//!
//! redb runs one write transaction at a time and each durable commit is an fsync, so calls
//! that each committed alone queued behind each other's fsyncs: an edge's send waited for a
//! collector's receive and delete, and the two commit slots of an edge for each other. Here
//! the changes that arrive while a commit is under way share the next one. Each caller is
//! still answered only after the commit that holds its change is durable, so every call is
//! as durable when it returns as before; a commit that fails fails every call in it, and
//! none of their changes is made.
//!
//! A voter waits on a send (the edge acknowledges a vote once its message is durable), on
//! nothing else: while sends are coming (one came within the last [`DEFER_MAX`]), a
//! collector's receive or delete waits up to [`DEFER_MAX`] for the next send to share its
//! commit. Under a steady load each message then costs about one fsync instead of up to three
//! (its send, its receive, its delete), and a send less often waits behind another call's
//! commit. Without sends (a drained queue, the spill log being forwarded) nothing waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::{DEAD, Header, MESSAGES, META, NEXT_SEQ, READY, encode_dead, storage};
use crate::{QueueError, Received, now_ms};

/// Most changes one transaction applies: bounds what one commit holds (and fails).
const MAX_WRITES_PER_COMMIT: usize = 64;
/// Most changes waiting for the writer; beyond it callers wait for room.
const WRITES_WAITING: usize = 1024;
/// Longest a change nobody acknowledges a vote on (a receive, a delete) waits for one that
/// somebody does (a send) to share its commit, and how recent the last send must be for it to
/// wait at all: a collector sees a message, or its delete is made, at most this much later; a
/// send never waits.
pub(super) const DEFER_MAX: Duration = Duration::from_millis(10);

/// One change of the queue, with the caller waiting for its answer.
pub(super) enum Write {
    /// Appends messages (visible at once); answers their ids.
    Send {
        bodies: Vec<String>,
        reply: Reply<Vec<String>>,
    },
    /// Takes up to `max` visible messages, hidden for `visibility`.
    Receive {
        max: usize,
        visibility: Duration,
        max_receives: u32,
        reply: Reply<Vec<Received>>,
    },
    /// Applies `change` to each message whose handle (seq, generation) is current.
    Update {
        stage: &'static str,
        handles: Vec<(u64, u32)>,
        change: Change,
        reply: Reply<()>,
    },
}

type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// What an [`Write::Update`] does to a message it holds the current handle of.
pub(super) enum Change {
    Delete,
    /// Visible again at this time (ms since the epoch).
    VisibleAt(u64),
    DeadLetter {
        reason: String,
    },
}

/// What a change answers, before its commit.
enum Answer {
    Ids(Vec<String>),
    Received(Vec<Received>),
    Done,
}

impl Write {
    /// Whether the change commits at once: a send (a voter waits on it), a visibility change
    /// (a consumer's heartbeat against its timeout) and a dead letter. A receive or a delete
    /// may wait for one of those to share its commit.
    fn is_urgent(&self) -> bool {
        !matches!(
            self,
            Write::Receive { .. }
                | Write::Update {
                    change: Change::Delete,
                    ..
                }
        )
    }

    fn stage(&self) -> &'static str {
        match self {
            Write::Send { .. } => "send",
            Write::Receive { .. } => "receive",
            Write::Update { stage, .. } => stage,
        }
    }

    /// Applies the change in `t`; whether it changed anything, and its answer.
    fn apply(&self, t: &mut Tables<'_>, now: u64) -> Result<(bool, Answer), QueueError> {
        match self {
            Write::Send { bodies, .. } => Ok((true, Answer::Ids(t.send(bodies, now)?))),
            Write::Receive {
                max,
                visibility,
                max_receives,
                ..
            } => {
                let got = t.receive(*max, *visibility, *max_receives, now)?;
                Ok((got.changed, Answer::Received(got.messages)))
            }
            Write::Update {
                stage,
                handles,
                change,
                ..
            } => Ok((t.update(stage, handles, change)?, Answer::Done)),
        }
    }

    /// Tells the caller how its commit went. A caller that gave up is not an error.
    fn answer(self, outcome: Result<Answer, QueueError>) {
        match (self, outcome) {
            (Write::Send { reply, .. }, Ok(Answer::Ids(ids))) => drop(reply.send(Ok(ids))),
            (Write::Receive { reply, .. }, Ok(Answer::Received(got))) => {
                drop(reply.send(Ok(got)));
            }
            (Write::Update { reply, .. }, Ok(Answer::Done)) => drop(reply.send(Ok(()))),
            (Write::Send { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (Write::Receive { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (Write::Update { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (write, Ok(_)) => unreachable!("{} given another call's answer", write.stage()),
        }
    }
}

/// The writer: a thread that owns every change of one queue file. Dropping it lets the
/// thread finish the changes already handed over, and waits for it (so the file is closed
/// when the last handle of the queue is gone).
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Write>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counts: Arc<Counts>,
}

/// What the writer thread has done, for the queue's handles to read.
#[derive(Default)]
struct Counts {
    /// Commits made (each one fsync).
    commits: AtomicU64,
    /// Receives and deletes held now, waiting for a send to share its commit.
    deferred: AtomicU64,
}

impl Writer {
    /// The writer of `db`, deferring receives and deletes up to [`DEFER_MAX`].
    pub(super) fn start(db: Arc<Database>) -> Result<Writer, QueueError> {
        Self::start_deferring(db, DEFER_MAX)
    }

    /// The writer of `db`, deferring receives and deletes up to `defer_max` (zero: none).
    fn start_deferring(db: Arc<Database>, defer_max: Duration) -> Result<Writer, QueueError> {
        let (tx, rx) = mpsc::channel(WRITES_WAITING);
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        let thread = std::thread::Builder::new()
            .name("edgevote-queue-writer".into())
            .spawn(move || write_loop(&db, rx, &shared, defer_max))
            .map_err(|e| QueueError::backend("open", format!("writer thread: {e}")))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            counts,
        })
    }

    /// Commits made so far (each one fsync).
    pub(super) fn commits(&self) -> u64 {
        self.counts.commits.load(Ordering::Relaxed)
    }

    /// Receives and deletes held now, waiting for a send to share its commit.
    #[cfg(test)]
    fn deferred(&self) -> u64 {
        self.counts.deferred.load(Ordering::Relaxed)
    }

    /// Hands `write` (made around its reply channel) to the writer and waits until the commit
    /// that holds it is durable (or failed).
    pub(super) async fn write<T>(
        &self,
        stage: &'static str,
        make: impl FnOnce(Reply<T>) -> Write,
    ) -> Result<T, QueueError> {
        let stopped = || QueueError::backend(stage, "the queue's writer has stopped");
        let (reply, answer) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(make(reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // The thread only ends by its channel closing; a panic there was already reported.
            let _ = thread.join();
        }
    }
}

/// Takes the changes waiting (at most [`MAX_WRITES_PER_COMMIT`]) and commits them together,
/// until every handle is gone; a group of receives and deletes waits (up to `defer_max` from
/// its first change) for an urgent change to join it if a send came within the last
/// `defer_max`. Bounded: each pass takes a change off the channel or commits.
fn write_loop(db: &Database, mut rx: mpsc::Receiver<Write>, counts: &Counts, defer_max: Duration) {
    let clock = (!defer_max.is_zero()).then(deferral_clock).flatten();
    // Without a timer nothing may wait: with no deferral every group commits as it comes, and
    // nothing is ever held (so the clock below is never wanted).
    let defer_max = clock.as_ref().map_or(Duration::ZERO, |_| defer_max);
    let mut held = Held::default();
    let mut last_send: Option<Instant> = None;
    loop {
        let next = match (held.since, &clock) {
            (Some(first), Some(clock)) => {
                let left = defer_max.saturating_sub(first.elapsed());
                // The timer is made inside the runtime: it needs the runtime's clock.
                let waited = clock.block_on(async { tokio::time::timeout(left, rx.recv()).await });
                match waited {
                    Ok(next) => next,
                    // Waited long enough: the held changes commit alone.
                    Err(_) => {
                        held.commit(db, counts);
                        continue;
                    }
                }
            }
            _ => rx.blocking_recv(),
        };
        let Some(next) = next else {
            // Every handle is gone: what is held is still committed and answered.
            held.commit(db, counts);
            return;
        };
        held.group.push(next);
        take_waiting(&mut rx, &mut held.group);
        let urgent = held.group.iter().any(Write::is_urgent);
        if held.group.iter().any(|w| matches!(w, Write::Send { .. })) {
            last_send = Some(Instant::now());
        }
        let sends_coming = last_send.is_some_and(|at| at.elapsed() < defer_max);
        let due = held.since.is_some_and(|first| first.elapsed() >= defer_max);
        let full = held.group.len() >= MAX_WRITES_PER_COMMIT;
        if urgent || !sends_coming || due || full {
            held.commit(db, counts);
        } else {
            held.since.get_or_insert_with(Instant::now);
            counts
                .deferred
                .store(held.group.len() as u64, Ordering::Relaxed);
        }
    }
}

/// The changes the writer holds for its next commit, and since when.
#[derive(Default)]
struct Held {
    group: Vec<Write>,
    since: Option<Instant>,
}

impl Held {
    /// Commits what is held (if anything) and starts afresh.
    fn commit(&mut self, db: &Database, counts: &Counts) {
        let group = std::mem::take(&mut self.group);
        self.since = None;
        counts.deferred.store(0, Ordering::Relaxed);
        if !group.is_empty() {
            commit_group(db, group, &counts.commits);
        }
    }
}

/// A runtime to wait on the channel with a timeout from this thread; `None` if the system
/// would not give one (then nothing is deferred).
fn deferral_clock() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| tracing::warn!(stage = "queue", error = %e, "no timer for the queue writer; receives and deletes commit alone"))
        .ok()
}

/// Moves the changes already waiting into `group`, up to [`MAX_WRITES_PER_COMMIT`].
fn take_waiting(rx: &mut mpsc::Receiver<Write>, group: &mut Vec<Write>) {
    while group.len() < MAX_WRITES_PER_COMMIT {
        match rx.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
}

/// Applies `group` in one transaction and answers each change: with its answer once the
/// commit is durable (and counted in `commits`), or with the error if any part failed (then
/// nothing of it is made). An unchanged queue is not committed.
fn commit_group(db: &Database, group: Vec<Write>, commits: &AtomicU64) {
    match apply_group(db, &group) {
        Ok((answers, committed)) => {
            if committed {
                commits.fetch_add(1, Ordering::Relaxed);
            }
            for (write, answer) in group.into_iter().zip(answers) {
                write.answer(Ok(answer));
            }
        }
        Err(e) => {
            tracing::warn!(stage = "queue", changes = group.len(), error = %e, "queue commit failed");
            let detail = format!("the commit it shared failed: {e}");
            for write in group {
                let stage = write.stage();
                write.answer(Err(QueueError::backend(stage, &detail)));
            }
        }
    }
}

/// The answers, and whether anything was committed.
fn apply_group(db: &Database, group: &[Write]) -> Result<(Vec<Answer>, bool), QueueError> {
    let now = now_ms();
    let txn = db!("write", db.begin_write())?;
    let mut answers = Vec::with_capacity(group.len());
    let mut changed = false;
    {
        let mut tables = Tables::open(&txn)?;
        for write in group {
            let (this_changed, answer) = write.apply(&mut tables, now)?;
            changed |= this_changed;
            answers.push(answer);
        }
    }
    if changed {
        db!("write", txn.commit())?;
    } else {
        // Receives that found nothing (another receiver took it since their read), stale
        // handles: no fsync for an unchanged queue.
        db!("write", txn.abort())?;
    }
    Ok((answers, changed))
}

/// The queue's tables, open in one write transaction.
struct Tables<'txn> {
    messages: redb::Table<'txn, u64, &'static [u8]>,
    ready: redb::Table<'txn, (u64, u64), ()>,
    dead: redb::Table<'txn, u64, &'static [u8]>,
    meta: redb::Table<'txn, &'static str, u64>,
}

/// What a receive took.
struct Taken {
    messages: Vec<Received>,
    /// Whether it changed the queue (took or dead-lettered a message).
    changed: bool,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, QueueError> {
        Ok(Tables {
            messages: db!("write", txn.open_table(MESSAGES))?,
            ready: db!("write", txn.open_table(READY))?,
            dead: db!("write", txn.open_table(DEAD))?,
            meta: db!("write", txn.open_table(META))?,
        })
    }

    fn send(&mut self, bodies: &[String], now: u64) -> Result<Vec<String>, QueueError> {
        let mut seq = db!("send", self.meta.get(NEXT_SEQ))?.map_or(0, |v| v.value());
        let mut ids = Vec::with_capacity(bodies.len());
        for body in bodies {
            let header = Header {
                sent_at_ms: now,
                visible_at_ms: now,
                receive_count: 0,
                generation: 0,
            };
            let record = header.encode(body.as_bytes());
            db!("send", self.messages.insert(seq, record.as_slice()))?;
            db!("send", self.ready.insert((now, seq), ()))?;
            ids.push(seq.to_string());
            seq += 1;
        }
        db!("send", self.meta.insert(NEXT_SEQ, seq))?;
        Ok(ids)
    }

    fn receive(
        &mut self,
        max: usize,
        visibility: Duration,
        max_receives: u32,
        now: u64,
    ) -> Result<Taken, QueueError> {
        let hidden_until = now.saturating_add(crate::millis(visibility));
        let due: Vec<(u64, u64)> = db!("receive", self.ready.range((0, 0)..=(now, u64::MAX)))?
            .take(max.saturating_mul(4))
            .map(|entry| entry.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()
            .map_err(|e| storage("receive")(e.into()))?;
        let mut taken = Taken {
            messages: Vec::new(),
            changed: false,
        };
        for (visible_at, seq) in due {
            if taken.messages.len() == max {
                break;
            }
            taken.changed = true;
            db!("receive", self.ready.remove((visible_at, seq)))?;
            let Some(record) = db!("receive", self.messages.get(seq))?.map(|v| v.value().to_vec())
            else {
                continue;
            };
            let (mut header, body) = Header::decode(&record)?;
            header.receive_count += 1;
            if header.receive_count > max_receives {
                let letter = encode_dead(&header, "max_receives_exceeded", body);
                db!("receive", self.dead.insert(seq, letter.as_slice()))?;
                db!("receive", self.messages.remove(seq))?;
                tracing::warn!(
                    seq,
                    receive_count = header.receive_count,
                    "queue message dead-lettered after max receives"
                );
                continue;
            }
            header.generation = header.generation.wrapping_add(1);
            header.visible_at_ms = hidden_until;
            let record = header.encode(body);
            db!("receive", self.messages.insert(seq, record.as_slice()))?;
            db!("receive", self.ready.insert((hidden_until, seq), ()))?;
            taken.messages.push(Received {
                id: seq.to_string(),
                handle: format!("{seq}.{}", header.generation),
                body: String::from_utf8_lossy(body).into_owned(),
                receive_count: header.receive_count,
                sent_at_ms: header.sent_at_ms,
            });
        }
        Ok(taken)
    }

    /// Applies `change` to each message whose handle is current; whether any was.
    fn update(
        &mut self,
        stage: &'static str,
        handles: &[(u64, u32)],
        change: &Change,
    ) -> Result<bool, QueueError> {
        let mut changed = false;
        for &(seq, generation) in handles {
            let Some(record) = db!(stage, self.messages.get(seq))?.map(|v| v.value().to_vec())
            else {
                continue; // already deleted
            };
            let (mut header, body) = Header::decode(&record)?;
            if header.generation != generation {
                tracing::debug!(seq, "stale receipt handle ignored");
                continue;
            }
            changed = true;
            db!(stage, self.ready.remove((header.visible_at_ms, seq)))?;
            match change {
                Change::Delete => {
                    db!(stage, self.messages.remove(seq))?;
                }
                Change::VisibleAt(visible_at) => {
                    header.visible_at_ms = *visible_at;
                    let record = header.encode(body);
                    db!(stage, self.messages.insert(seq, record.as_slice()))?;
                    db!(stage, self.ready.insert((*visible_at, seq), ()))?;
                }
                Change::DeadLetter { reason } => {
                    let letter = encode_dead(&header, reason, body);
                    db!(stage, self.dead.insert(seq, letter.as_slice()))?;
                    db!(stage, self.messages.remove(seq))?;
                }
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer on a fresh queue file deferring up to `defer_max`, and the file's directory.
    fn writer(defer_max: Duration) -> (Arc<Writer>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = Database::create(dir.path().join("q.redb")).expect("a queue file");
        super::super::EmbeddedQueue::init_tables(&db).expect("the queue's tables");
        let writer = Writer::start_deferring(Arc::new(db), defer_max).expect("the writer");
        (Arc::new(writer), dir)
    }

    async fn send(writer: &Writer, body: &str) -> Vec<String> {
        let bodies = vec![body.to_owned()];
        writer
            .write("send", |reply| Write::Send { bodies, reply })
            .await
            .expect("a send")
    }

    async fn receive(writer: Arc<Writer>) -> Result<Vec<Received>, QueueError> {
        let visibility = Duration::from_secs(60);
        writer
            .write("receive", |reply| Write::Receive {
                max: 10,
                visibility,
                max_receives: 5,
                reply,
            })
            .await
    }

    async fn delete(writer: Arc<Writer>, handle: (u64, u32)) -> Result<(), QueueError> {
        writer
            .write("delete", |reply| Write::Update {
                stage: "delete",
                handles: vec![handle],
                change: Change::Delete,
                reply,
            })
            .await
    }

    /// Fails the test instead of hanging it when `work` never ends.
    async fn within<T>(work: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .expect("answered")
    }

    /// Returns once the writer holds a deferred change.
    async fn held(writer: &Writer) {
        while writer.deferred() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn handle(message: &Received) -> (u64, u32) {
        let (seq, generation) = message.handle.split_once('.').expect("seq.generation");
        (
            seq.parse().expect("seq"),
            generation.parse().expect("generation"),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receive_and_a_delete_wait_for_a_send_and_share_its_commit() {
        // Deferred for as long as the test could run: only a send can commit them.
        let (writer, _dir) = writer(Duration::from_secs(3600));
        within(send(&writer, "first")).await;
        assert_eq!(writer.commits(), 1, "a send commits at once");

        let receiving = tokio::spawn(receive(Arc::clone(&writer)));
        within(held(&writer)).await;
        assert!(!receiving.is_finished(), "a receive alone waits for a send");
        within(send(&writer, "second")).await;
        let got = within(receiving).await.expect("joined").expect("received");
        assert_eq!(writer.commits(), 2, "the receive shared the send's commit");
        assert_eq!(got.len(), 1, "the receive came first in the shared commit");
        assert_eq!(got[0].body, "first");

        let deleting = tokio::spawn(delete(Arc::clone(&writer), handle(&got[0])));
        within(held(&writer)).await;
        assert!(!deleting.is_finished(), "a delete alone waits for a send");
        within(send(&writer, "third")).await;
        within(deleting).await.expect("joined").expect("deleted");
        assert_eq!(writer.commits(), 3, "the delete shared the send's commit");

        // What is left: the second and third messages, the first deleted.
        let left = within(async {
            let receiving = tokio::spawn(receive(Arc::clone(&writer)));
            held(&writer).await;
            send(&writer, "fourth").await;
            receiving.await.expect("joined").expect("received")
        })
        .await;
        assert_eq!(
            writer.commits(),
            4,
            "the last receive shared the fourth send's commit"
        );
        let bodies: Vec<&str> = left.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["second", "third"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_receive_or_delete_commits_once_its_deferral_is_over() {
        let (writer, _dir) = writer(Duration::from_millis(20));
        within(send(&writer, "only")).await;
        let got = within(receive(Arc::clone(&writer)))
            .await
            .expect("received");
        assert_eq!(got.len(), 1);
        assert_eq!(writer.commits(), 2, "the receive committed alone");
        within(delete(Arc::clone(&writer), handle(&got[0])))
            .await
            .expect("deleted");
        assert_eq!(writer.commits(), 3, "the delete committed alone");
        let empty = within(receive(Arc::clone(&writer)))
            .await
            .expect("received");
        assert!(empty.is_empty(), "the deleted message is gone: {empty:?}");
        assert_eq!(writer.commits(), 3, "an empty receive commits nothing");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_no_send_coming_a_receive_and_a_delete_commit_at_once() {
        // A queue with messages but no sender (a spill log being forwarded): a writer that
        // has seen no send holds nothing, however long it could.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("q.redb");
        let db = Arc::new(Database::create(&path).expect("a queue file"));
        super::super::EmbeddedQueue::init_tables(&db).expect("the queue's tables");
        let sender = Writer::start_deferring(Arc::clone(&db), Duration::ZERO).expect("a writer");
        within(send(&sender, "spilled")).await;
        drop(sender);
        let writer =
            Arc::new(Writer::start_deferring(db, Duration::from_secs(3600)).expect("a writer"));
        let got = within(receive(Arc::clone(&writer)))
            .await
            .expect("received");
        assert_eq!(got.len(), 1);
        within(delete(Arc::clone(&writer), handle(&got[0])))
            .await
            .expect("deleted");
        assert_eq!(writer.commits(), 2, "each committed alone, at once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_deferral_every_change_commits_as_it_comes() {
        let (writer, _dir) = writer(Duration::ZERO);
        within(send(&writer, "only")).await;
        let got = within(receive(Arc::clone(&writer)))
            .await
            .expect("received");
        within(delete(Arc::clone(&writer), handle(&got[0])))
            .await
            .expect("deleted");
        assert_eq!(writer.commits(), 3);
    }
}
