//! Audit durability under load: group commit (one fdatasync per batch, `AuditLog`)
//! against one fdatasync per record, at 1, 8 and 64 concurrent writers, on the same disk.
//! Results and how to read them: docs/audit.md.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use attrgate::audit::{
    AuditCounters, AuditLog, AuditRecord, AuditStore, ChainHead, Event, Outcome, WriterOptions,
};
use attrgate::identity::Caller;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prometheus::IntCounter;

const RECORDS: usize = 512;

fn record(i: usize) -> AuditRecord {
    let caller = Caller {
        iss: "https://idp.example".into(),
        sub: "bench".into(),
        roles: vec!["support".into()],
        claims: Default::default(),
    };
    let mut record = AuditRecord::new(
        &format!("req-{i}"),
        Event::Intent,
        &caller,
        "us-east-1_bench",
        "ann",
    );
    record.attributes = vec!["given_name".into()];
    record.values.insert("given_name".into(), "0".repeat(64));
    record.outcome = Outcome::Pending;
    record
}

fn bench_dir() -> PathBuf {
    // target/ is on the same disk as the project, like a real audit directory.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-audit");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn counters() -> AuditCounters {
    AuditCounters {
        records: IntCounter::new("r", "r").unwrap(),
        failures: IntCounter::new("f", "f").unwrap(),
        syncs: IntCounter::new("s", "s").unwrap(),
    }
}

/// The CPU ceiling: the same pipeline with a store that never syncs (nothing durable).
/// Not a design anyone should run; it shows how much of the cost is fsync at all.
struct NoSync(File);

impl AuditStore for NoSync {
    fn append_durable(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }
}

/// The naive design: every record is written and fdatasync'ed on its own, under a lock.
async fn one_sync_per_record(file: Arc<Mutex<File>>, writers: usize) {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                for i in (w..RECORDS).step_by(writers) {
                    let mut line = serde_json::to_vec(&record(i)).unwrap();
                    line.push(b'\n');
                    let mut file = file.lock().unwrap();
                    file.write_all(&line).unwrap();
                    file.sync_data().unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn group_commit(log: AuditLog, writers: usize) {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in (w..RECORDS).step_by(writers) {
                    log.append(&record(i)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn audit_durability(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = bench_dir();
    let mut group = c.benchmark_group("audit_durable_append");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    for writers in [1, 8, 64] {
        let naive_path = dir.join(format!("naive-{writers}.jsonl"));
        let _ = std::fs::remove_file(&naive_path);
        let file = Arc::new(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&naive_path)
                .unwrap(),
        ));
        group.bench_with_input(
            BenchmarkId::new("one_fsync_per_record", writers),
            &writers,
            |b, &w| {
                b.to_async(&runtime)
                    .iter(|| one_sync_per_record(file.clone(), w));
            },
        );

        let grouped_path = dir.join(format!("grouped-{writers}.jsonl"));
        let _ = std::fs::remove_file(&grouped_path);
        let counters = counters();
        let log = AuditLog::open(
            &grouped_path,
            None,
            counters.clone(),
            WriterOptions::default(),
        )
        .unwrap();
        group.bench_with_input(
            BenchmarkId::new("group_commit", writers),
            &writers,
            |b, &w| {
                b.to_async(&runtime).iter(|| group_commit(log.clone(), w));
            },
        );
        let batch = counters.records.get() as f64 / counters.syncs.get().max(1) as f64;
        eprintln!("group_commit/{writers}: {batch:.1} records per fdatasync on average");
        let ceiling_path = dir.join(format!("ceiling-{writers}.jsonl"));
        let ceiling_file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&ceiling_path)
            .unwrap();
        let ceiling = AuditLog::start(NoSync(ceiling_file), ChainHead::default(), counters.clone());
        group.bench_with_input(
            BenchmarkId::new("no_fsync_ceiling", writers),
            &writers,
            |b, &w| {
                b.to_async(&runtime)
                    .iter(|| group_commit(ceiling.clone(), w));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, audit_durability);
criterion_main!(benches);
