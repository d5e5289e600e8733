//! Reading logs as an investigator does: the files of one or more replicas, grouped by
//! replica and put in chain order, each chain verified as it is read, against signed
//! checkpoints when given; and `audit search`, which filters the records on the way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::chain::{ChainVerifier, VerifyError, for_each_line};
use super::checkpoint::{check_record, read_checkpoints, replica_of};

/// The files of one replica, in chain order.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaFiles {
    pub(crate) replica: String,
    pub(crate) files: Vec<PathBuf>,
}

/// Groups log files by the replica their newest records name (records from before
/// replicas were named carry none, and may start a file that a named replica goes on
/// writing), each group ordered by the `seq` of its first record, so rotated files may
/// be given in any order. Empty files are left out.
///
/// # Errors
/// A file cannot be read, or its first line is not a record.
pub(crate) fn group_by_replica(files: &[PathBuf]) -> Result<Vec<ReplicaFiles>, String> {
    let mut groups: BTreeMap<String, Vec<(u64, PathBuf)>> = BTreeMap::new();
    for path in files {
        let Some(first) = first_line(path)? else {
            continue;
        };
        let record: Value = serde_json::from_str(&first)
            .map_err(|_| format!("{}:1: not a JSON record", path.display()))?;
        let seq = record.get("seq").and_then(Value::as_u64).unwrap_or(0);
        groups
            .entry(newest_replica(path)?)
            .or_default()
            .push((seq, path.clone()));
    }
    Ok(groups
        .into_iter()
        .map(|(replica, mut files)| {
            files.sort();
            ReplicaFiles {
                replica,
                files: files.into_iter().map(|(_, path)| path).collect(),
            }
        })
        .collect())
}

/// The replica that the newest record naming one names (`""` if none does).
fn newest_replica(path: &Path) -> Result<String, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?
        .len();
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(len.saturating_sub(1 << 20)))
        .and_then(|_| file.read_to_end(&mut tail))
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|record| replica_of(&record).to_owned())
        .find(|replica| !replica.is_empty())
        .unwrap_or_default())
}

fn first_line(path: &Path) -> Result<Option<String>, String> {
    use std::io::BufRead;
    let file =
        std::fs::File::open(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut line)
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    Ok((!line.trim().is_empty()).then_some(line.trim_end().to_owned()))
}

/// What was verified of one replica's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaReport {
    pub(crate) replica: String,
    pub(crate) files: usize,
    pub(crate) records: u64,
    pub(crate) last_seq: Option<u64>,
    /// Checkpoints of this replica that were checked, and the last one's seq.
    pub(crate) checkpoints: usize,
    pub(crate) last_checkpoint: Option<u64>,
}

impl ReplicaReport {
    /// Records after the last checkpoint: intact, but not yet vouched for by a signature.
    pub(crate) fn not_checkpointed(&self) -> u64 {
        match (self.last_seq, self.last_checkpoint) {
            (Some(last), Some(checkpoint)) => last.saturating_sub(checkpoint),
            (Some(_), None) => self.records,
            _ => 0,
        }
    }
}

/// Signed checkpoints to verify against: the file and its public key.
pub(crate) struct CheckpointCheck<'a> {
    pub(crate) path: &'a Path,
    pub(crate) key: &'a VerifyingKey,
}

/// Verifies every replica's chain in `files`, each separately, and with `checkpoints`
/// that no checkpointed record was cut off or rewritten.
///
/// # Errors
/// The first problem, naming the file and line (or the checkpoint line).
pub(crate) fn verify_logs(
    files: &[PathBuf],
    checkpoints: Option<&CheckpointCheck<'_>>,
) -> Result<Vec<ReplicaReport>, String> {
    let signed = checkpoints
        .map(|check| read_checkpoints(check.path, check.key))
        .transpose()?;
    let groups = group_by_replica(files)?;
    let checkpoint_file = checkpoints.map_or(Path::new(""), |check| check.path);
    if let Some(signed) = &signed {
        for (replica, signed_seqs) in &signed.by_replica {
            if let Some((&seq, (_, line))) = signed_seqs.last_key_value()
                && !groups.iter().any(|group| &group.replica == replica)
            {
                return Err(format!(
                    "{}:{line}: checkpoint seq {seq} of replica {}: no record of this replica is in the files given: the log was emptied or replaced, or its files were left out",
                    checkpoint_file.display(),
                    display_replica(replica)
                ));
            }
        }
    }
    let mut reports = Vec::new();
    for group in groups {
        let ours = signed
            .as_ref()
            .and_then(|signed| signed.by_replica.get(&group.replica))
            .cloned()
            .unwrap_or_default();
        let mut read = ChainReader::new(&group, true);
        read.each(|verified| {
            check_record(
                &ours,
                &group.replica,
                verified.seq,
                &verified.hash,
                checkpoint_file,
            )
        })?;
        let last_seq = read.verifier.summary().last_seq;
        if let Some((&seq, (_, line))) = ours.last_key_value()
            && last_seq.is_none_or(|last| last < seq)
        {
            return Err(format!(
                "{}:{line}: checkpoint seq {seq} of replica {}: the log ends {}: records were cut off after a checkpoint",
                checkpoint_file.display(),
                display_replica(&group.replica),
                last_seq.map_or("before its first record".to_owned(), |last| format!(
                    "at seq {last}"
                )),
            ));
        }
        reports.push(ReplicaReport {
            replica: group.replica.clone(),
            files: group.files.len(),
            records: read.verifier.summary().records,
            last_seq,
            checkpoints: ours.len(),
            last_checkpoint: ours.keys().next_back().copied(),
        });
    }
    Ok(reports)
}

pub(crate) fn display_replica(replica: &str) -> &str {
    if replica.is_empty() {
        "(unnamed)"
    } else {
        replica
    }
}

/// Reads one replica's files in order through one chain verifier.
struct ChainReader<'a> {
    group: &'a ReplicaFiles,
    verifier: ChainVerifier,
    /// `false`: the first file may start mid-chain (older rotated files not given).
    from_genesis: bool,
}

impl<'a> ChainReader<'a> {
    fn new(group: &'a ReplicaFiles, from_genesis: bool) -> Self {
        Self {
            group,
            verifier: ChainVerifier::new(None),
            from_genesis,
        }
    }

    /// Calls `each` with every verified record; stops at the first bad line.
    fn each(
        &mut self,
        mut each: impl FnMut(&super::chain::Verified) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut first_file = !self.from_genesis;
        for path in &self.group.files {
            // The chain of a replica's first file may start after rotated files that
            // were not given: take its first record's prev_hash as given.
            if first_file {
                if let Some(start) = first_prev_hash(path)? {
                    self.verifier = ChainVerifier::new(Some(&start));
                }
                first_file = false;
            }
            let verifier = &mut self.verifier;
            let mut outcome = Ok(());
            let replica = &self.group.replica;
            let result = for_each_line(path, |line, number, torn| {
                let verified = verifier.push(line, number, torn)?;
                let named = replica_of(&verified.record);
                if !named.is_empty() && named != replica {
                    return Err(VerifyError {
                        line: number,
                        message: format!(
                            "the record names replica {named}, but the file belongs to replica {}: logs of two gateways were mixed",
                            display_replica(replica)
                        ),
                    });
                }
                if let Err(message) = each(&verified) {
                    outcome = Err(message);
                    return Err(VerifyError {
                        line: number,
                        message: String::new(),
                    });
                }
                Ok(())
            });
            outcome?;
            result
                .map_err(|error| format!("{}:{}: {}", path.display(), error.line, error.message))?;
        }
        Ok(())
    }
}

fn first_prev_hash(path: &Path) -> Result<Option<String>, String> {
    Ok(first_line(path)?.and_then(|line| {
        let record: Value = serde_json::from_str(&line).ok()?;
        record
            .get("prev_hash")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }))
}

/// What `audit search` looks for; every filter that is set must match.
#[derive(Debug, Default)]
pub(crate) struct SearchQuery {
    pub(crate) pool: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) attribute: Option<String>,
    /// The HMAC of the value searched for (never the value).
    pub(crate) value_hmac: Option<String>,
    pub(crate) caller: Option<String>,
    pub(crate) since: Option<OffsetDateTime>,
    pub(crate) until: Option<OffsetDateTime>,
}

impl SearchQuery {
    fn matches(&self, record: &Value) -> bool {
        let text = |key: &str| record.get(key).and_then(Value::as_str);
        let attributes = record.get("attributes").and_then(Value::as_array);
        let values = record.get("values").and_then(Value::as_object);
        self.pool
            .as_deref()
            .is_none_or(|pool| text("pool_id") == Some(pool))
            && self
                .user
                .as_deref()
                .is_none_or(|user| text("username") == Some(user))
            && self.caller.as_deref().is_none_or(|sub| {
                record.pointer("/caller/sub").and_then(Value::as_str) == Some(sub)
            })
            && self.attribute.as_deref().is_none_or(|name| {
                attributes.is_some_and(|names| names.iter().any(|n| n.as_str() == Some(name)))
            })
            && self.value_hmac.as_deref().is_none_or(|hmac| {
                values.is_some_and(|values| {
                    values.iter().any(|(name, value)| {
                        value.as_str() == Some(hmac)
                            && self.attribute.as_deref().is_none_or(|a| a == name)
                    })
                })
            })
            && self.in_time_range(text("time"))
    }

    fn in_time_range(&self, time: Option<&str>) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(at) = time.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()) else {
            return false;
        };
        self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at < until)
    }
}

/// What a search read, and whether every chain it read was intact.
#[derive(Debug, Default)]
pub(crate) struct SearchReport {
    pub(crate) records: u64,
    pub(crate) matches: u64,
    /// One line per replica whose chain broke, and where: results past it are unproven.
    pub(crate) broken: Vec<String>,
}

/// Reads every replica's files in chain order, verifying as it goes, and calls `found`
/// with each matching record (its parsed form without `hash`, and its line).
///
/// # Errors
/// A file cannot be read at all.
pub(crate) fn search(
    files: &[PathBuf],
    query: &SearchQuery,
    mut found: impl FnMut(&Value, u64),
) -> Result<SearchReport, String> {
    let mut report = SearchReport::default();
    for group in group_by_replica(files)? {
        let mut reader = ChainReader::new(&group, false);
        let result = reader.each(|verified| {
            report.records += 1;
            if query.matches(&verified.record) {
                report.matches += 1;
                found(&verified.record, verified.seq);
            }
            Ok(())
        });
        if let Err(problem) = result {
            report.broken.push(format!(
                "replica {}: the chain breaks at {problem}; its records from there on were not searched",
                display_replica(&group.replica)
            ));
        }
    }
    Ok(report)
}
