//! The durable writer: one thread owns the file; callers send records and wait until
//! their batch is written and fdatasync'ed (group commit: one sync per batch).
//! If a write or sync fails, every record in the batch gets an error and the chain
//! does not advance, so callers can fail closed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::IntCounter;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::chain::{GENESIS_HASH, seal};
use super::record::now_rfc3339;
use super::{AuditError, AuditRecord};

const MAX_BATCH: usize = 4096;
const TAIL_WINDOW: u64 = 1024 * 1024;

/// Where sealed lines go. `append_durable` returns only when the bytes are on disk, and
/// on error leaves the store as it was before the call (as far as it can).
pub trait AuditStore: Send + 'static {
    fn append_durable(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

/// The end of an existing chain, where the writer resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub next_seq: u64,
    pub last_hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        Self {
            next_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
        }
    }
}

pub struct FileStore {
    file: File,
    len: u64,
}

impl FileStore {
    /// Opens (or creates) the log, cuts a torn last line, and finds where the chain resumes.
    /// Returns the number of bytes cut, if any, so the writer can record the repair.
    pub fn open(path: &Path) -> Result<(Self, ChainHead, Option<u64>), AuditError> {
        let open_error = |message: String| AuditError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_error(e.to_string()))?;
        }
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| open_error(e.to_string()))?;
        if !existed {
            sync_parent(path).map_err(|e| open_error(e.to_string()))?;
        }
        let len = file
            .metadata()
            .map_err(|e| open_error(e.to_string()))?
            .len();
        let start = len.saturating_sub(TAIL_WINDOW);
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_to_end(&mut tail))
            .map_err(|e| open_error(e.to_string()))?;
        let complete_len = match tail.iter().rposition(|b| *b == b'\n') {
            Some(at) => start + at as u64 + 1,
            None if start == 0 => 0,
            None => return Err(open_error("the last 1 MiB holds no complete record".into())),
        };
        let torn = (complete_len < len).then_some(len - complete_len);
        if torn.is_some() {
            file.set_len(complete_len)
                .and_then(|_| file.sync_all())
                .map_err(|e| open_error(format!("failed to cut a torn last line: {e}")))?;
        }
        let complete = &tail[..(complete_len - start) as usize];
        let head = match complete[..complete.len().saturating_sub(1)]
            .rsplit(|b| *b == b'\n')
            .next()
            .filter(|line| !line.is_empty())
        {
            None => ChainHead::default(),
            Some(line) => {
                let last: Value = serde_json::from_slice(line).map_err(|e| {
                    open_error(format!(
                        "the last record is not JSON ({e}); run `attrgate audit verify`"
                    ))
                })?;
                match (
                    last.get("seq").and_then(Value::as_u64),
                    last.get("hash").and_then(Value::as_str),
                ) {
                    (Some(seq), Some(hash)) => ChainHead {
                        next_seq: seq + 1,
                        last_hash: hash.to_owned(),
                    },
                    _ => return Err(open_error("the last record has no seq/hash".into())),
                }
            }
        };
        Ok((
            Self {
                file,
                len: complete_len,
            },
            head,
            torn,
        ))
    }
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => File::open(parent)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

impl AuditStore for FileStore {
    fn append_durable(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|_| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                // Cut whatever part of the batch reached the file, so the chain stays whole.
                let _ = self.file.set_len(self.len);
                Err(error)
            }
        }
    }
}

#[derive(Clone)]
pub struct AuditCounters {
    pub records: IntCounter,
    pub failures: IntCounter,
}

struct Pending {
    record: Value,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// A handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::UnboundedSender<Pending>,
    healthy: Arc<AtomicBool>,
    path: Option<PathBuf>,
}

impl AuditLog {
    pub fn open(path: &Path, counters: AuditCounters) -> Result<Self, AuditError> {
        let (store, head, torn) = FileStore::open(path)?;
        let log = Self::start(store, head, counters, Some(path.to_owned()));
        if let Some(bytes) = torn {
            tracing::warn!(bytes, path = %path.display(), "cut a torn last audit line");
            let record =
                json!({"event": "recovered", "time": now_rfc3339(), "truncated_bytes": bytes});
            log.send(record).map_err(|e| AuditError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        Ok(log)
    }

    /// Starts a writer over any store (tests use stores that fail on demand).
    pub fn start(
        store: impl AuditStore,
        head: ChainHead,
        counters: AuditCounters,
        path: Option<PathBuf>,
    ) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let healthy = Arc::new(AtomicBool::new(true));
        let writer_healthy = healthy.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(store, head, receiver, writer_healthy, counters))
            .expect("spawn the audit writer thread");
        Self {
            sender,
            healthy,
            path,
        }
    }

    /// Writes the record and returns once it is on disk.
    pub async fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let value = serde_json::to_value(record).map_err(|e| AuditError::Write(e.to_string()))?;
        self.send_async(value).await
    }

    async fn send_async(&self, record: Value) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.sender
            .send(Pending { record, done })
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }

    fn send(&self, record: Value) -> Result<(), AuditError> {
        let (done, _wait) = oneshot::channel();
        self.sender
            .send(Pending { record, done })
            .map_err(|_| AuditError::Stopped)
    }

    /// False after a failed write, until a write succeeds again.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

fn run(
    mut store: impl AuditStore,
    mut head: ChainHead,
    mut receiver: mpsc::UnboundedReceiver<Pending>,
    healthy: Arc<AtomicBool>,
    counters: AuditCounters,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut bytes = Vec::with_capacity(batch.len() * 512);
        let mut next = head.clone();
        for pending in &mut batch {
            let (line, hash) = seal(pending.record.take(), next.next_seq, &next.last_hash);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            next = ChainHead {
                next_seq: next.next_seq + 1,
                last_hash: hash,
            };
        }
        let result = store.append_durable(&bytes);
        healthy.store(result.is_ok(), Ordering::Release);
        let answer = match result {
            Ok(()) => {
                head = next;
                counters.records.inc_by(batch.len() as u64);
                Ok(())
            }
            Err(error) => {
                counters.failures.inc();
                tracing::error!(%error, records = batch.len(), "audit write failed; failing closed");
                Err(AuditError::Write(error.kind().to_string()))
            }
        };
        for pending in batch {
            let _ = pending.done.send(answer.clone());
        }
    }
}
