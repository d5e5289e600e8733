//! The durable writer: one thread owns the file; callers send records and wait until
//! their batch is written and fdatasync'ed (group commit: one sync per batch).
//! If a write or sync fails, every record in the batch gets an error and the chain
//! does not advance, so callers can fail closed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::chain::{GENESIS_HASH, Prepared, seal_prepared};
use super::checkpoint::{self, CheckpointConfig, Head, Note};
use super::error::AuditError;
use super::permit::{Intent, WritePermit};
use super::record::AuditRecord;
use super::record::{Event, Outcome, now_rfc3339};
use crate::policy::AllowedChanges;

const MAX_BATCH: usize = 4096;
const TAIL_WINDOW: u64 = 1024 * 1024;
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Where sealed lines go. `append_durable` returns only when the bytes are on disk, and
/// on error leaves the store as it was before the call (as far as it can).
pub trait AuditStore: Send + 'static {
    fn append_durable(&mut self, bytes: &[u8]) -> std::io::Result<()>;

    /// The file the last appended record is in, as checkpoints name it.
    fn location(&self) -> String {
        String::new()
    }
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

pub(super) struct FileStore {
    path: PathBuf,
    file: File,
    len: u64,
    rotate_bytes: Option<u64>,
    /// The file name the last record went to (the current file, or its rotated name).
    last_file: String,
    /// A failed write could not be cut back: lines that were never acknowledged may be
    /// in the file, so nothing more is written to it until a restart repairs the log.
    broken: bool,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The name of the `n`th rotated file: `<path>.<n, 8 digits>`, so a shell glob lists them in order.
pub(super) fn rotated_name(path: &Path, n: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n:08}"));
    PathBuf::from(name)
}

/// The rotated files of `path`, oldest first.
pub(super) fn rotated_files(path: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = format!(
        "{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.parse::<u64>().ok())
        {
            files.push((n, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Every file of the log at `path`, oldest first: its rotated files, then `path` itself.
///
/// # Errors
/// The directory cannot be read.
pub(crate) fn log_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = rotated_files(path)?.into_iter().map(|(_, p)| p).collect();
    files.push(path.to_owned());
    Ok(files)
}

/// The end of `file`: the offset where the read started and the bytes from there on.
fn read_tail(file: &mut File, len: u64) -> std::io::Result<(u64, Vec<u8>)> {
    let start = len.saturating_sub(TAIL_WINDOW);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start))?;
    file.read_to_end(&mut tail)?;
    Ok((start, tail))
}

/// Where the chain resumes after `complete` (whole lines only).
fn head_after(complete: &[u8]) -> Result<ChainHead, String> {
    let Some(line) = complete[..complete.len().saturating_sub(1)]
        .rsplit(|b| *b == b'\n')
        .next()
        .filter(|line| !line.is_empty())
    else {
        return Ok(ChainHead::default());
    };
    let last: Value = serde_json::from_slice(line)
        .map_err(|e| format!("the last record is not JSON ({e}); run `attrgate audit verify`"))?;
    match (
        last.get("seq").and_then(Value::as_u64),
        last.get("hash").and_then(Value::as_str),
    ) {
        (Some(seq), Some(hash)) => Ok(ChainHead {
            next_seq: seq + 1,
            last_hash: hash.to_owned(),
        }),
        _ => Err("the last record has no seq/hash".into()),
    }
}

impl FileStore {
    /// Opens (or creates) the log, cuts a torn last line, and finds where the chain resumes:
    /// after the last record of this file or, if it is empty, of the newest rotated file.
    /// Returns the number of bytes cut, if any, so the writer can record the repair.
    pub(super) fn open(
        path: &Path,
        rotate_bytes: Option<u64>,
    ) -> Result<(Self, ChainHead, Option<u64>), AuditError> {
        let open_error = AuditError::open(path);
        let unusable = |problem: String| AuditError::Unusable {
            path: path.display().to_string(),
            problem,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(&open_error)?;
        }
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(&open_error)?;
        if !existed {
            sync_parent(path).map_err(&open_error)?;
        }
        let len = file.metadata().map_err(&open_error)?.len();
        let (start, tail) = read_tail(&mut file, len).map_err(&open_error)?;
        let complete_len = match tail.iter().rposition(|b| *b == b'\n') {
            Some(at) => start + at as u64 + 1,
            None if start == 0 => 0,
            None => return Err(unusable("the last 1 MiB holds no complete record".into())),
        };
        let torn = (complete_len < len).then_some(len - complete_len);
        if torn.is_some() {
            file.set_len(complete_len)
                .and_then(|_| file.sync_all())
                .map_err(&open_error)?;
        }
        let mut head = head_after(&tail[..(complete_len - start) as usize]).map_err(unusable)?;
        if complete_len == 0 {
            let newest = rotated_files(path).map_err(&open_error)?.pop();
            if let Some((_, rotated)) = newest {
                let open_rotated = AuditError::open(&rotated);
                let mut previous = File::open(&rotated).map_err(&open_rotated)?;
                let previous_len = previous.metadata().map_err(&open_rotated)?.len();
                let (_, tail) = read_tail(&mut previous, previous_len).map_err(&open_rotated)?;
                head = head_after(&tail).map_err(|problem| AuditError::Unusable {
                    path: rotated.display().to_string(),
                    problem,
                })?;
            }
        }
        Ok((
            Self {
                path: path.to_owned(),
                file,
                len: complete_len,
                rotate_bytes,
                last_file: file_name(path),
                broken: false,
            },
            head,
            torn,
        ))
    }

    /// Moves the full file aside as the next numbered file and starts an empty one.
    fn rotate(&mut self) -> std::io::Result<()> {
        let next = rotated_files(&self.path)?.last().map_or(1, |(n, _)| n + 1);
        let rotated = rotated_name(&self.path, next);
        std::fs::rename(&self.path, &rotated)?;
        self.last_file = file_name(&rotated);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)?;
        sync_parent(&self.path)?;
        self.file = file;
        self.len = 0;
        Ok(())
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
        if self.broken {
            return Err(std::io::Error::other(
                "an earlier failed write could not be cut from the audit file; restart attrgate",
            ));
        }
        let result = self
            .file
            .write_all(bytes)
            .and_then(|_| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += bytes.len() as u64;
                self.last_file = file_name(&self.path);
                if self.rotate_bytes.is_some_and(|limit| self.len >= limit)
                    && let Err(error) = self.rotate()
                {
                    tracing::error!(error = %crate::report::chain(&error), "audit rotation failed; writing on to the current file");
                }
                Ok(())
            }
            Err(error) => {
                // Cut whatever part of the batch reached the file, so the chain stays whole
                // (and no reader of the file takes the unacknowledged lines for records).
                if let Err(cut) = self.file.set_len(self.len) {
                    tracing::error!(error = %crate::report::chain(&cut), "cannot cut a failed audit write; refusing further writes");
                    self.broken = true;
                }
                Err(error)
            }
        }
    }

    fn location(&self) -> String {
        self.last_file.clone()
    }
}

#[derive(Clone)]
pub struct AuditCounters {
    pub records: IntCounter,
    pub failures: IntCounter,
    pub syncs: IntCounter,
}

struct Pending {
    record: Prepared,
    /// Answered with the record's `seq` once it is on disk.
    done: oneshot::Sender<Result<u64, AuditError>>,
}

/// What the writer thread is asked to do, in order.
enum Message {
    Append(Pending),
    /// Sign a checkpoint of everything appended before this message, then answer.
    Checkpoint(oneshot::Sender<()>),
}

/// The writer's own settings: the replica its records name, and its checkpoints.
#[derive(Default)]
pub struct WriterOptions {
    pub(crate) replica: Option<String>,
    pub(crate) checkpoints: Option<CheckpointConfig>,
}

impl WriterOptions {
    /// Records name `replica`; no checkpoints.
    #[must_use]
    pub fn named(replica: &str) -> Self {
        Self {
            replica: Some(replica.to_owned()),
            checkpoints: None,
        }
    }
}

/// A handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::UnboundedSender<Message>,
    healthy: Arc<AtomicBool>,
    last_probe: Arc<Mutex<Option<Instant>>>,
    /// Written into every record, when set.
    replica: Option<Arc<str>>,
    /// The `seq` the next record will get: every record below it is on disk.
    durable: watch::Receiver<u64>,
}

impl AuditLog {
    pub fn open(
        path: &Path,
        rotate_bytes: Option<u64>,
        counters: AuditCounters,
        options: WriterOptions,
    ) -> Result<Self, AuditError> {
        let (store, head, torn) = FileStore::open(path, rotate_bytes)?;
        let log = Self::start_with(store, head, counters, options)?;
        if let Some(bytes) = torn {
            tracing::warn!(bytes, path = %path.display(), "cut a torn last audit line");
            let record =
                json!({"event": "recovered", "time": now_rfc3339(), "truncated_bytes": bytes});
            log.send(record)?;
        }
        Ok(log)
    }

    /// Starts a writer over any store (tests use stores that fail on demand), without
    /// a replica name or checkpoints.
    pub fn start(store: impl AuditStore, head: ChainHead, counters: AuditCounters) -> Self {
        Self::start_with(store, head, counters, WriterOptions::default())
            .expect("a writer without checkpoints starts")
    }

    fn start_with(
        store: impl AuditStore,
        head: ChainHead,
        counters: AuditCounters,
        options: WriterOptions,
    ) -> Result<Self, AuditError> {
        let checkpoints = options.checkpoints.map(checkpoint::spawn).transpose()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let healthy = Arc::new(AtomicBool::new(true));
        let (durable_sender, durable) = watch::channel(head.next_seq);
        let writer = Writer {
            healthy: healthy.clone(),
            counters,
            checkpoints,
            durable: durable_sender,
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(store, head, receiver))
            .expect("spawn the audit writer thread");
        Ok(Self {
            sender,
            healthy,
            last_probe: Arc::new(Mutex::new(None)),
            replica: options.replica.map(Arc::from),
            durable,
        })
    }

    /// Watches the `seq` the next record will get: every record below it is on disk,
    /// so a reader of the files may take it (change events tail the log by it).
    #[must_use]
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }

    /// Writes the record and returns once it is on disk.
    pub async fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let value = serde_json::to_value(record).map_err(|e| AuditError::Encode(Arc::new(e)))?;
        self.send_async(value).await.map(|_seq| ())
    }

    /// Signs a checkpoint of every record appended so far (at a clean shutdown), and
    /// returns once it is written; at once when there are no checkpoints.
    pub(crate) async fn checkpoint_now(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Checkpoint(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// The record with this writer's replica name in it.
    fn stamped(&self, mut record: Value) -> Value {
        if let (Some(replica), Some(object)) = (&self.replica, record.as_object_mut()) {
            object.insert("replica".into(), Value::String(replica.to_string()));
        }
        record
    }

    /// Writes the intent record of `changes` and returns, once it is on disk, the permit
    /// that Cognito's update consumes: the changes themselves, the target the record
    /// names, and the record's `seq`. The record is made to announce exactly these
    /// changes (their names, and no other value HMACs than theirs) and this target.
    ///
    /// # Errors
    /// The record could not be made durable: the update must not happen, and the
    /// changes are gone with the error.
    pub async fn append_intent(
        &self,
        intent: Intent,
        changes: AllowedChanges,
    ) -> Result<WritePermit, AuditError> {
        let Intent {
            mut record,
            pool_id,
            username,
        } = intent;
        record.event = Event::Intent;
        record.outcome = Outcome::Pending;
        record.pool_id = pool_id.as_str().to_owned();
        record.username = username.as_str().to_owned();
        record.attributes = changes.names();
        record
            .values
            .retain(|name, _| changes.as_map().contains_key(name));
        let value = serde_json::to_value(&record).map_err(|e| AuditError::Encode(Arc::new(e)))?;
        let seq = self.send_async(value).await?;
        Ok(WritePermit::new(
            seq,
            record.request_id,
            pool_id,
            username,
            changes,
        ))
    }

    /// Sends one record and waits until it is on disk; its `seq`.
    async fn send_async(&self, record: Value) -> Result<u64, AuditError> {
        let (done, wait) = oneshot::channel();
        self.sender
            .send(Message::Append(Pending {
                record: Prepared::new(self.stamped(record)),
                done,
            }))
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }

    /// Sends one record without waiting for it.
    fn send(&self, record: Value) -> Result<(), AuditError> {
        let (done, _wait) = oneshot::channel();
        self.sender
            .send(Message::Append(Pending {
                record: Prepared::new(self.stamped(record)),
                done,
            }))
            .map_err(|_| AuditError::Stopped)
    }

    /// False after a failed write, until a write succeeds again.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Whether the log can be written now. While unhealthy, writes a `health_probe`
    /// record (at most one a second) so that readiness returns without waiting for traffic.
    pub async fn check_writable(&self) -> bool {
        if self.healthy() {
            return true;
        }
        {
            let mut last = self.last_probe.lock().expect("probe lock");
            if last.is_some_and(|at| at.elapsed() < PROBE_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let probe = json!({"event": "health_probe", "time": now_rfc3339()});
        self.send_async(probe).await.is_ok()
    }
}

/// The writer thread's state besides the store and the chain head.
struct Writer {
    healthy: Arc<AtomicBool>,
    counters: AuditCounters,
    checkpoints: Option<std::sync::mpsc::Sender<Note>>,
    durable: watch::Sender<u64>,
}

impl Writer {
    fn run(
        self,
        mut store: impl AuditStore,
        mut head: ChainHead,
        mut receiver: mpsc::UnboundedReceiver<Message>,
    ) {
        while let Some(first) = receiver.blocking_recv() {
            let mut batch = Vec::new();
            let mut flush = None;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Append(pending) => batch.push(pending),
                    // Everything before it goes into this batch; the checkpoint follows.
                    Message::Checkpoint(done) => {
                        flush = Some(done);
                        break;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = receiver.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                head = self.write(&mut store, head, batch);
            }
            if let Some(done) = flush {
                match &self.checkpoints {
                    Some(checkpoints) => {
                        let _ = checkpoints.send(Note::Flush(done));
                    }
                    None => {
                        let _ = done.send(());
                    }
                }
            }
        }
    }

    /// Seals and writes one batch durably, answers every record in it, and returns the
    /// new head (the old one if the write failed).
    fn write(
        &self,
        store: &mut impl AuditStore,
        head: ChainHead,
        batch: Vec<Pending>,
    ) -> ChainHead {
        let mut bytes = Vec::with_capacity(batch.len() * 512);
        let first_seq = head.next_seq;
        let mut next = head.clone();
        for pending in &batch {
            let (line, hash) = seal_prepared(&pending.record, next.next_seq, &next.last_hash);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            next = ChainHead {
                next_seq: next.next_seq + 1,
                last_hash: hash,
            };
        }
        let result = store.append_durable(&bytes);
        self.healthy.store(result.is_ok(), Ordering::Release);
        let (answer, head) = match result {
            Ok(()) => {
                self.counters.records.inc_by(batch.len() as u64);
                self.counters.syncs.inc();
                if let Some(checkpoints) = &self.checkpoints {
                    let _ = checkpoints.send(Note::Head(Head {
                        seq: next.next_seq - 1,
                        hash: next.last_hash.clone(),
                        file: store.location(),
                    }));
                }
                self.durable.send_replace(next.next_seq);
                (Ok(first_seq), next)
            }
            Err(error) => {
                self.counters.failures.inc();
                tracing::error!(error = %crate::report::chain(&error), records = batch.len(), "audit write failed; failing closed");
                (Err(AuditError::Write(Arc::new(error))), head)
            }
        };
        for (offset, pending) in (0..).zip(batch) {
            let _ = pending
                .done
                .send(answer.clone().map(|first| first + offset));
        }
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::verify_file;
    use crate::audit::chain::verify_lines;
    use crate::audit::record::Event;
    use crate::identity::Caller;

    /// A store that fails while `fail` is set, and otherwise keeps lines in memory.
    #[derive(Clone, Default)]
    struct FlakyStore {
        fail: Arc<AtomicBool>,
        written: Arc<Mutex<Vec<u8>>>,
        syncs: Arc<Mutex<usize>>,
    }

    impl AuditStore for FlakyStore {
        fn append_durable(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
            }
            // Stands in for the time an fsync takes, so concurrent appends can queue up.
            std::thread::sleep(Duration::from_millis(2));
            self.written.lock().unwrap().extend_from_slice(bytes);
            *self.syncs.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn counters() -> AuditCounters {
        AuditCounters {
            records: IntCounter::new("r", "r").unwrap(),
            failures: IntCounter::new("f", "f").unwrap(),
            syncs: IntCounter::new("s", "s").unwrap(),
        }
    }

    fn record(id: &str) -> AuditRecord {
        let caller = Caller {
            iss: "i".into(),
            sub: "s".into(),
            roles: vec![],
            claims: Default::default(),
        };
        let mut record = AuditRecord::new(id, Event::Request, &caller, "us-east-1_x", "ann");
        record.outcome = Outcome::Denied;
        record
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn lines(store: &FlakyStore) -> String {
        String::from_utf8(store.written.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_failing_store_fails_every_append_and_recovery_continues_the_same_chain() {
        let store = FlakyStore::default();
        let counters = counters();
        let log = AuditLog::start(store.clone(), ChainHead::default(), counters.clone());
        let rt = rt();

        rt.block_on(log.append(&record("a"))).unwrap();
        store.fail.store(true, Ordering::SeqCst);
        let failed = rt.block_on(log.append(&record("b")));
        let unhealthy = !log.healthy();
        store.fail.store(false, Ordering::SeqCst);
        rt.block_on(log.append(&record("c"))).unwrap();

        assert!(failed.is_err());
        assert!(unhealthy);
        assert!(log.healthy());
        assert_eq!(counters.failures.get(), 1);
        let text = lines(&store);
        assert!(
            !text.contains("\"b\""),
            "a failed record must not be in the log"
        );
        let summary = verify_lines(text.lines(), None, true).unwrap();
        assert_eq!(summary.records, 2);
    }

    /// A store whose sync does not return until the test lets it.
    struct GatedStore {
        release: std::sync::mpsc::Receiver<()>,
    }

    impl AuditStore for GatedStore {
        fn append_durable(&mut self, _bytes: &[u8]) -> std::io::Result<()> {
            self.release
                .recv()
                .map_err(|_| std::io::Error::other("gate dropped"))
        }
    }

    #[test]
    fn an_append_is_not_acknowledged_before_the_store_has_synced() {
        let (release, gate) = std::sync::mpsc::channel();
        let log = AuditLog::start(
            GatedStore { release: gate },
            ChainHead::default(),
            counters(),
        );
        let rt = rt();

        let (acknowledged_early, acknowledged_after) = rt.block_on(async {
            let pending = tokio::spawn({
                let log = log.clone();
                async move { log.append(&record("a")).await }
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            let early = pending.is_finished();
            release.send(()).unwrap();
            (early, pending.await.unwrap())
        });

        assert!(
            !acknowledged_early,
            "append returned while the sync was still running"
        );
        assert!(acknowledged_after.is_ok());
    }

    #[test]
    fn concurrent_appends_share_syncs() {
        let store = FlakyStore::default();
        let log = AuditLog::start(store.clone(), ChainHead::default(), counters());
        let rt = rt();

        rt.block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let log = log.clone();
                    tokio::spawn(async move { log.append(&record(&format!("r{i}"))).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().unwrap();
            }
        });

        let syncs = *store.syncs.lock().unwrap();
        assert!(syncs < 200, "200 records took {syncs} syncs");
        assert_eq!(
            verify_lines(lines(&store).lines(), None, true)
                .unwrap()
                .records,
            200
        );
    }

    #[test]
    fn readiness_probes_an_unhealthy_log_and_recovers_without_traffic() {
        let store = FlakyStore::default();
        let log = AuditLog::start(store.clone(), ChainHead::default(), counters());
        let rt = rt();
        store.fail.store(true, Ordering::SeqCst);
        let _ = rt.block_on(log.append(&record("x")));

        let while_failing = rt.block_on(log.check_writable());
        store.fail.store(false, Ordering::SeqCst);
        std::thread::sleep(PROBE_INTERVAL);
        let after = rt.block_on(log.check_writable());

        assert!(!while_failing);
        assert!(after);
        assert!(lines(&store).contains("health_probe"));
    }

    fn temp_path() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("attrgate-unit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("audit.jsonl")
    }

    #[test]
    fn a_torn_last_line_is_cut_on_open_and_the_repair_is_recorded_in_the_chain() {
        let path = temp_path();
        let rt = rt();
        {
            let log = AuditLog::open(&path, None, counters(), WriterOptions::default()).unwrap();
            rt.block_on(log.append(&record("a"))).unwrap();
            rt.block_on(log.append(&record("b"))).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"half\":")
            .unwrap();
        assert!(
            verify_file(&path, None)
                .unwrap_err()
                .message
                .contains("torn")
        );

        let log = AuditLog::open(&path, None, counters(), WriterOptions::default()).unwrap();
        rt.block_on(log.append(&record("c"))).unwrap();

        let summary = verify_file(&path, None).unwrap();
        assert_eq!(summary.records, 4);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().nth(2).unwrap().contains("\"recovered\""));
    }

    #[test]
    fn rotation_by_size_continues_the_chain_across_files_and_survives_a_restart() {
        let path = temp_path();
        let rt = rt();
        {
            let log =
                AuditLog::open(&path, Some(4096), counters(), WriterOptions::default()).unwrap();
            for i in 0..40 {
                rt.block_on(log.append(&record(&format!("r{i}")))).unwrap();
            }
        }
        // Reopen after the last rotation left the current file empty or short.
        {
            let log =
                AuditLog::open(&path, Some(4096), counters(), WriterOptions::default()).unwrap();
            rt.block_on(log.append(&record("after-restart"))).unwrap();
        }

        let mut files: Vec<PathBuf> = rotated_files(&path)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert!(files.len() >= 2, "expected rotations, got {files:?}");
        files.push(path.clone());
        let mut start: Option<String> = None;
        let mut total = 0;
        for file in &files {
            let summary = verify_file(file, start.as_deref()).unwrap();
            total += summary.records;
            start = Some(summary.last_hash);
        }
        assert_eq!(total, 41);
        assert!(
            verify_file(&files[1], None).is_err(),
            "a later file alone does not start the chain"
        );
    }
}
