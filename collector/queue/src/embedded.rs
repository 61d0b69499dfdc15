//! The embedded durable queue: SQS semantics on one redb file.
//!
//! Tables:
//! - `messages`: sequence number → record (header + body);
//! - `ready`: (visible-at ms, sequence) → (): the visibility index, scanned in time order;
//! - `dead`: sequence → dead-letter record;
//! - `meta`: counters (next sequence number).
//!
//! Every change (send, receive, delete, visibility, dead letter) is applied by one writer
//! thread (`writer.rs`), which commits the changes that waited together in one redb
//! transaction with `Durability::Immediate` (one fsync) and answers each only then, so a
//! send that returned `Ok` survives a crash. A send commits at once; a receive or a delete may
//! wait a few milliseconds for a send to share its commit (`writer.rs`). A receipt handle is
//! `seq.generation`: each receive bumps the generation, so a consumer whose visibility ran out
//! cannot delete a message someone else now holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::{
    DeadLetter, Queue, QueueError, QueueStats, Received, bounded_reason, check_receive, check_send,
    now_ms,
};

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const READY: TableDefinition<(u64, u64), ()> = TableDefinition::new("ready");
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";

/// Longest sleep between polls while a receive waits (also picks up expired visibility).
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Configuration of an embedded queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedQueueConfig {
    /// The redb file.
    pub path: PathBuf,
    /// Receives after which a message moves to the dead-letter queue (SQS `maxReceiveCount`).
    #[serde(default = "default_max_receives")]
    pub max_receives: u32,
}

fn default_max_receives() -> u32 {
    5
}

/// The durable on-disk queue.
#[derive(Clone)]
pub struct EmbeddedQueue {
    /// Read transactions (stats, dead letters, whether anything is due).
    db: Arc<Database>,
    /// Every change, committed by one thread (see `writer.rs`). Declared after `db`, so the
    /// last handle's drop waits for the writer, and the file is closed when it returns.
    writer: Arc<Writer>,
    notify: Arc<Notify>,
    max_receives: u32,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("max_receives", &self.max_receives)
            .finish_non_exhaustive()
    }
}

/// The fixed header in front of each message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    sent_at_ms: u64,
    visible_at_ms: u64,
    receive_count: u32,
    generation: u32,
}

const HEADER_BYTES: usize = 24;

impl Header {
    fn encode(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
        out.extend_from_slice(&self.sent_at_ms.to_be_bytes());
        out.extend_from_slice(&self.visible_at_ms.to_be_bytes());
        out.extend_from_slice(&self.receive_count.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn decode(record: &[u8]) -> Result<(Header, &[u8]), QueueError> {
        if record.len() < HEADER_BYTES {
            return Err(QueueError::backend(
                "decode",
                "message record shorter than its header",
            ));
        }
        let whole = "the record holds its whole header (checked above)";
        let u64_at = |i: usize| u64::from_be_bytes(record[i..i + 8].try_into().expect(whole));
        let u32_at = |i: usize| u32::from_be_bytes(record[i..i + 4].try_into().expect(whole));
        let header = Header {
            sent_at_ms: u64_at(0),
            visible_at_ms: u64_at(8),
            receive_count: u32_at(16),
            generation: u32_at(20),
        };
        Ok((header, &record[HEADER_BYTES..]))
    }
}

fn storage(stage: &'static str) -> impl Fn(redb::Error) -> QueueError {
    move |e| QueueError::backend(stage, e)
}

/// Converts any redb error type into [`QueueError`] for `stage`.
macro_rules! db {
    ($stage:expr, $e:expr) => {
        $e.map_err(|e| storage($stage)(e.into()))
    };
}

// Declared after `db!` so that the writer uses the same macro.
mod writer;

use writer::{Change, Write, Writer};

impl EmbeddedQueue {
    /// Opens (or creates) the queue file.
    pub fn open(config: &EmbeddedQueueConfig) -> Result<Self, QueueError> {
        if config.max_receives == 0 {
            return Err(QueueError::Invalid {
                stage: "open",
                detail: "max_receives must be at least 1".into(),
            });
        }
        create_parent(&config.path)?;
        let db = Arc::new(db!("open", Database::create(&config.path))?);
        Self::init_tables(&db)?;
        Ok(EmbeddedQueue {
            writer: Arc::new(Writer::start(Arc::clone(&db))?),
            db,
            notify: Arc::new(Notify::new()),
            max_receives: config.max_receives,
        })
    }

    /// Commits this queue's writer has made since it opened (each one fsync): changes that
    /// wait for a commit under way share the next one, so under concurrency this is fewer
    /// than the calls that changed the queue.
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    fn init_tables(db: &Database) -> Result<(), QueueError> {
        let txn = db!("open", db.begin_write())?;
        {
            db!("open", txn.open_table(MESSAGES))?;
            db!("open", txn.open_table(READY))?;
            db!("open", txn.open_table(DEAD))?;
            db!("open", txn.open_table(META))?;
        }
        db!("open", txn.commit())
    }

    /// Runs blocking storage work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        stage: &'static str,
        work: impl FnOnce(&Database) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| QueueError::backend(stage, e))?
    }

    /// Whether a message is visible at `now` (read transaction only).
    fn anything_due(db: &Database, now: u64) -> Result<bool, QueueError> {
        let txn = db!("receive", db.begin_read())?;
        let ready = db!("receive", txn.open_table(READY))?;
        let mut due = db!("receive", ready.range((0, 0)..=(now, u64::MAX)))?;
        Ok(due.next().is_some())
    }

    /// Parses every handle first: a malformed one refuses the whole call, which changes
    /// nothing.
    fn parse_handles(
        stage: &'static str,
        handles: &[String],
    ) -> Result<Vec<(u64, u32)>, QueueError> {
        handles.iter().map(|h| parse_handle(stage, h)).collect()
    }

    /// Applies `change` to each message whose handle is current, in one commit.
    async fn update(
        &self,
        stage: &'static str,
        handles: &[String],
        change: Change,
    ) -> Result<(), QueueError> {
        let handles = Self::parse_handles(stage, handles)?;
        self.writer
            .write(stage, |reply| Write::Update {
                stage,
                handles,
                change,
                reply,
            })
            .await
    }
}

fn parse_handle(stage: &'static str, handle: &str) -> Result<(u64, u32), QueueError> {
    let invalid = || QueueError::Invalid {
        stage,
        detail: format!("malformed receipt handle {handle:?}"),
    };
    let (seq, generation) = handle.split_once('.').ok_or_else(invalid)?;
    Ok((
        seq.parse().map_err(|_| invalid())?,
        generation.parse().map_err(|_| invalid())?,
    ))
}

fn encode_dead(header: &Header, reason: &str, body: &[u8]) -> Vec<u8> {
    let reason = bounded_reason(reason).as_bytes();
    let mut out = Vec::with_capacity(6 + reason.len() + body.len());
    out.extend_from_slice(&header.receive_count.to_be_bytes());
    const _: () = assert!(crate::MAX_REASON_BYTES <= u16::MAX as usize);
    let length = u16::try_from(reason.len()).expect("bounded_reason keeps a reason under 64 KiB");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(reason);
    out.extend_from_slice(body);
    out
}

fn decode_dead(seq: u64, record: &[u8]) -> Result<DeadLetter, QueueError> {
    let corrupt = || QueueError::backend("dead_letters", "corrupt dead-letter record");
    let count = u32::from_be_bytes(
        record
            .get(0..4)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    );
    let len = usize::from(u16::from_be_bytes(
        record
            .get(4..6)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    ));
    let reason = record.get(6..6 + len).ok_or_else(corrupt)?;
    let body = record.get(6 + len..).ok_or_else(corrupt)?;
    Ok(DeadLetter {
        id: seq.to_string(),
        reason: String::from_utf8_lossy(reason).into_owned(),
        body: String::from_utf8_lossy(body).into_owned(),
        receive_count: count,
    })
}

fn create_parent(path: &Path) -> Result<(), QueueError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| QueueError::backend("open", format!("{}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<String>, QueueError> {
        check_send(&bodies)?;
        let ids = self
            .writer
            .write("send", |reply| Write::Send { bodies, reply })
            .await?;
        self.notify.notify_waiters();
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        check_receive(max, wait, visibility)?;
        let deadline = tokio::time::Instant::now() + wait;
        let max_receives = self.max_receives;
        loop {
            let notified = self.notify.notified();
            // Nothing due: answered from a read transaction. A change would wait for the
            // writer's commit under way, and four receivers woken by every send (or their
            // 50 ms polls) mostly find nothing.
            let due = self
                .blocking("receive", |db| Self::anything_due(db, now_ms()))
                .await?;
            let batch = if due {
                self.writer
                    .write("receive", |reply| Write::Receive {
                        max,
                        visibility,
                        max_receives,
                        reply,
                    })
                    .await?
            } else {
                Vec::new()
            };
            let now = tokio::time::Instant::now();
            if !batch.is_empty() || now >= deadline {
                return Ok(batch);
            }
            let nap = POLL_INTERVAL.min(deadline - now);
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    async fn delete_batch(&self, handles: Vec<String>) -> Result<(), QueueError> {
        if handles.len() > crate::MAX_BATCH {
            return Err(QueueError::Invalid {
                stage: "delete",
                detail: format!("{} handles, at most {}", handles.len(), crate::MAX_BATCH),
            });
        }
        self.update("delete", &handles, Change::Delete).await
    }

    async fn change_visibility(
        &self,
        handles: Vec<String>,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        crate::check_visibility("change_visibility", visibility)?;
        let visible_at = now_ms().saturating_add(crate::millis(visibility));
        self.update("change_visibility", &handles, Change::VisibleAt(visible_at))
            .await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        let change = Change::DeadLetter {
            reason: reason.to_owned(),
        };
        self.update("dead_letter", std::slice::from_ref(&message.handle), change)
            .await
    }

    async fn peek_dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let max = max.min(10_000);
        self.blocking("dead_letters", move |db| {
            let txn = db!("dead_letters", db.begin_read())?;
            let dead = db!("dead_letters", txn.open_table(DEAD))?;
            let mut out = Vec::new();
            for entry in db!("dead_letters", dead.iter())?.take(max) {
                let (k, v) = db!("dead_letters", entry)?;
                out.push(decode_dead(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let commits = Some(self.writer.commits());
        self.blocking("stats", move |db| {
            let now = now_ms();
            let txn = db!("stats", db.begin_read())?;
            let messages = db!("stats", txn.open_table(MESSAGES))?;
            let ready = db!("stats", txn.open_table(READY))?;
            let dead = db!("stats", txn.open_table(DEAD))?;
            let total = db!("stats", messages.len())?;
            // Count visible entries, bounded so a scrape of a huge backlog stays cheap.
            let visible = db!("stats", ready.range((0, 0)..=(now, u64::MAX)))?
                .take(1_000_000)
                .count() as u64;
            let oldest_age_ms = match db!("stats", messages.first())? {
                Some((_, v)) => now.saturating_sub(Header::decode(v.value())?.0.sent_at_ms),
                None => 0,
            };
            Ok(QueueStats {
                visible,
                in_flight: total.saturating_sub(visible),
                dead_letters: db!("stats", dead.len())?,
                oldest_age_ms,
                commits,
            })
        })
        .await
    }
}
