//! The embedded durable queue: SQS semantics on one redb file.
//!
//! Tables:
//! - `messages`: sequence number → record (header + body);
//! - `ready`: (visible-at ms, sequence) → (): the visibility index, scanned in time order;
//! - `dead`: sequence → dead-letter record;
//! - `meta`: counters (next sequence number).
//!
//! Every call is one redb transaction; writes commit with `Durability::Immediate` (fsync), so
//! a send that returned `Ok` survives a crash. A receipt handle is `seq.generation`: each
//! receive bumps the generation, so a consumer whose visibility ran out cannot delete a message
//! someone else now holds.

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
    db: Arc<Database>,
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
        let db = db!("open", Database::create(&config.path))?;
        let queue = EmbeddedQueue {
            db: Arc::new(db),
            notify: Arc::new(Notify::new()),
            max_receives: config.max_receives,
        };
        queue.init_tables()?;
        Ok(queue)
    }

    fn init_tables(&self) -> Result<(), QueueError> {
        let txn = db!("open", self.db.begin_write())?;
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

    fn try_receive(
        db: &Database,
        max: usize,
        visibility: Duration,
        max_receives: u32,
    ) -> Result<Vec<Received>, QueueError> {
        let now = now_ms();
        // Nothing due: answer from a read transaction. A write transaction would wait for the
        // senders' commits and then commit (an fsync) an unchanged queue, and four receivers
        // woken by every send (or their 50 ms polls) mostly find nothing.
        if !Self::anything_due(db, now)? {
            return Ok(Vec::new());
        }
        let hidden_until = now.saturating_add(crate::millis(visibility));
        let txn = db!("receive", db.begin_write())?;
        let mut out = Vec::new();
        {
            let mut messages = db!("receive", txn.open_table(MESSAGES))?;
            let mut ready = db!("receive", txn.open_table(READY))?;
            let mut dead = db!("receive", txn.open_table(DEAD))?;
            let due: Vec<(u64, u64)> = db!("receive", ready.range((0, 0)..=(now, u64::MAX)))?
                .take(max.saturating_mul(4))
                .map(|entry| entry.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(|e| storage("receive")(e.into()))?;
            if due.is_empty() {
                // Taken by another receiver since the read: nothing to commit.
                drop((messages, ready, dead));
                db!("receive", txn.abort())?;
                return Ok(out);
            }
            for (visible_at, seq) in due {
                if out.len() == max {
                    break;
                }
                db!("receive", ready.remove((visible_at, seq)))?;
                let Some(record) = db!("receive", messages.get(seq))?.map(|v| v.value().to_vec())
                else {
                    continue;
                };
                let (mut header, body) = Header::decode(&record)?;
                header.receive_count += 1;
                if header.receive_count > max_receives {
                    let letter = encode_dead(&header, "max_receives_exceeded", body);
                    db!("receive", dead.insert(seq, letter.as_slice()))?;
                    db!("receive", messages.remove(seq))?;
                    tracing::warn!(
                        seq,
                        receive_count = header.receive_count,
                        "queue message dead-lettered after max receives"
                    );
                    continue;
                }
                header.generation = header.generation.wrapping_add(1);
                header.visible_at_ms = hidden_until;
                db!(
                    "receive",
                    messages.insert(seq, header.encode(body).as_slice())
                )?;
                db!("receive", ready.insert((hidden_until, seq), ()))?;
                out.push(Received {
                    id: seq.to_string(),
                    handle: format!("{seq}.{}", header.generation),
                    body: String::from_utf8_lossy(body).into_owned(),
                    receive_count: header.receive_count,
                    sent_at_ms: header.sent_at_ms,
                });
            }
        }
        db!("receive", txn.commit())?;
        Ok(out)
    }

    /// Applies `change` to each message whose handle is current, in one transaction.
    fn update_handles(
        db: &Database,
        stage: &'static str,
        handles: &[String],
        mut change: impl FnMut(u64, Header, &[u8], &mut MessageTables<'_>) -> Result<(), QueueError>,
    ) -> Result<(), QueueError> {
        let txn = db!(stage, db.begin_write())?;
        {
            let mut tables = MessageTables {
                messages: db!(stage, txn.open_table(MESSAGES))?,
                ready: db!(stage, txn.open_table(READY))?,
                dead: db!(stage, txn.open_table(DEAD))?,
            };
            for handle in handles {
                let (seq, generation) = parse_handle(stage, handle)?;
                let Some(record) =
                    db!(stage, tables.messages.get(seq))?.map(|v| v.value().to_vec())
                else {
                    continue; // already deleted
                };
                let (header, body) = Header::decode(&record)?;
                if header.generation != generation {
                    tracing::debug!(seq, "stale receipt handle ignored");
                    continue;
                }
                db!(stage, tables.ready.remove((header.visible_at_ms, seq)))?;
                change(seq, header, body, &mut tables)?;
            }
        }
        db!(stage, txn.commit())
    }
}

struct MessageTables<'txn> {
    messages: redb::Table<'txn, u64, &'static [u8]>,
    ready: redb::Table<'txn, (u64, u64), ()>,
    dead: redb::Table<'txn, u64, &'static [u8]>,
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
            .blocking("send", move |db| {
                let now = now_ms();
                let txn = db!("send", db.begin_write())?;
                let mut ids = Vec::with_capacity(bodies.len());
                {
                    let mut meta = db!("send", txn.open_table(META))?;
                    let mut messages = db!("send", txn.open_table(MESSAGES))?;
                    let mut ready = db!("send", txn.open_table(READY))?;
                    let mut seq = db!("send", meta.get(NEXT_SEQ))?.map_or(0, |v| v.value());
                    for body in &bodies {
                        let header = Header {
                            sent_at_ms: now,
                            visible_at_ms: now,
                            receive_count: 0,
                            generation: 0,
                        };
                        db!(
                            "send",
                            messages.insert(seq, header.encode(body.as_bytes()).as_slice())
                        )?;
                        db!("send", ready.insert((now, seq), ()))?;
                        ids.push(seq.to_string());
                        seq += 1;
                    }
                    db!("send", meta.insert(NEXT_SEQ, seq))?;
                }
                db!("send", txn.commit())?;
                Ok(ids)
            })
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
            let batch = self
                .blocking("receive", move |db| {
                    Self::try_receive(db, max, visibility, max_receives)
                })
                .await?;
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
        self.blocking("delete", move |db| {
            Self::update_handles(db, "delete", &handles, |seq, _, _, t| {
                db!("delete", t.messages.remove(seq)).map(drop)
            })
        })
        .await
    }

    async fn change_visibility(
        &self,
        handles: Vec<String>,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        crate::check_visibility("change_visibility", visibility)?;
        self.blocking("change_visibility", move |db| {
            let visible_at = now_ms().saturating_add(crate::millis(visibility));
            Self::update_handles(
                db,
                "change_visibility",
                &handles,
                |seq, mut header, body, t| {
                    header.visible_at_ms = visible_at;
                    db!(
                        "change_visibility",
                        t.messages.insert(seq, header.encode(body).as_slice())
                    )?;
                    db!("change_visibility", t.ready.insert((visible_at, seq), ())).map(drop)
                },
            )
        })
        .await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        let handles = vec![message.handle.clone()];
        let reason = reason.to_owned();
        self.blocking("dead_letter", move |db| {
            Self::update_handles(db, "dead_letter", &handles, |seq, header, body, t| {
                let letter = encode_dead(&header, &reason, body);
                db!("dead_letter", t.dead.insert(seq, letter.as_slice()))?;
                db!("dead_letter", t.messages.remove(seq)).map(drop)
            })
        })
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
        self.blocking("stats", |db| {
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
            })
        })
        .await
    }
}
