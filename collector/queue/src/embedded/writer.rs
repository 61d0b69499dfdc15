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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::{DEAD, Header, MESSAGES, META, NEXT_SEQ, READY, encode_dead, storage};
use crate::{QueueError, Received, now_ms};

/// Most changes one transaction applies: bounds what one commit holds (and fails).
const MAX_WRITES_PER_COMMIT: usize = 64;
/// Most changes waiting for the writer; beyond it callers wait for room.
const WRITES_WAITING: usize = 1024;

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
    /// Commits made (each one fsync), shared with the thread.
    commits: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn start(db: Arc<Database>) -> Result<Writer, QueueError> {
        let (tx, rx) = mpsc::channel(WRITES_WAITING);
        let commits = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&commits);
        let thread = std::thread::Builder::new()
            .name("edgevote-queue-writer".into())
            .spawn(move || write_loop(&db, rx, &counted))
            .map_err(|e| QueueError::backend("open", format!("writer thread: {e}")))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            commits,
        })
    }

    /// Commits made so far (each one fsync).
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
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
/// until every handle is gone. Bounded: each pass takes at least one change off the channel.
fn write_loop(db: &Database, mut rx: mpsc::Receiver<Write>, commits: &AtomicU64) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = Vec::with_capacity(8);
        group.push(first);
        while group.len() < MAX_WRITES_PER_COMMIT {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        if commit_group(db, group) {
            commits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Applies `group` in one transaction and answers each change: with its answer once the
/// commit is durable, or with the error if any part failed (then nothing of it is made).
/// Whether it committed (an unchanged queue is not committed).
fn commit_group(db: &Database, group: Vec<Write>) -> bool {
    match apply_group(db, &group) {
        Ok((answers, committed)) => {
            for (write, answer) in group.into_iter().zip(answers) {
                write.answer(Ok(answer));
            }
            committed
        }
        Err(e) => {
            tracing::warn!(stage = "queue", changes = group.len(), error = %e, "queue commit failed");
            let detail = format!("the commit it shared failed: {e}");
            for write in group {
                let stage = write.stage();
                write.answer(Err(QueueError::backend(stage, &detail)));
            }
            false
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
