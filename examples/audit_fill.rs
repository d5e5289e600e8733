//! Writes a large audit log through the real writer (`AuditLog`: group commit, fdatasync
//! per batch, rotation off), to measure `attrgate audit search` and `audit verify` on it.
//! Usage: `cargo run --release --example audit_fill -- PATH [RECORDS]` (default 1,000,000).
//! The records name 1,000 users (`user-0` … `user-999`) in 10 pools.

use std::collections::BTreeMap;
use std::path::PathBuf;

use attrgate::audit::{AuditCounters, AuditLog, AuditRecord, Event, Outcome, WriterOptions};
use attrgate::identity::Caller;
use prometheus::IntCounter;

const WRITERS: usize = 64;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().expect("usage: audit_fill PATH [RECORDS]"));
    let total: usize = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("a count"));
    let counter = |name: &str| IntCounter::new(name, name).unwrap();
    let log = AuditLog::open(
        &path,
        None,
        AuditCounters {
            records: counter("records"),
            failures: counter("failures"),
            syncs: counter("syncs"),
        },
        WriterOptions::named("bench"),
    )
    .expect("open the log");
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in (writer..total).step_by(WRITERS) {
                    log.append(&record(i)).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{total} records in {seconds:.1} s ({:.0} records/s) to {}",
        total as f64 / seconds,
        path.display()
    );
}

fn record(i: usize) -> AuditRecord {
    let caller = Caller {
        iss: "https://idp.example".into(),
        sub: format!("service-{}", i % 7),
        roles: vec!["support".into()],
        claims: BTreeMap::new(),
    };
    let mut record = AuditRecord::new(
        &format!("req-{i}"),
        Event::Request,
        &caller,
        &format!("us-east-1_pool{}", i % 10),
        &format!("user-{}", i % 1000),
    );
    record.attributes = vec!["given_name".into()];
    record.values = BTreeMap::from([("given_name".into(), format!("{:064x}", i % 5000))]);
    record.outcome = if i.is_multiple_of(5) {
        Outcome::Denied
    } else {
        Outcome::Updated
    };
    record
}
