//! The hash chain: `hash` is SHA-256 (hex) over the record's canonical JSON (keys sorted,
//! no whitespace) without its `hash` field; `prev_hash` is the hash of the record before,
//! or `GENESIS_HASH` for the first. Verification is pure over lines of text.

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub(super) const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Adds `seq`, `prev_hash` and `hash` to a record and returns its line (without newline).
/// The reference definition; the writer uses `seal_prepared`, which must equal it.
#[cfg(test)]
pub(super) fn seal(mut record: Value, seq: u64, prev_hash: &str) -> (String, String) {
    let object = record
        .as_object_mut()
        .expect("audit records are JSON objects");
    object.remove("hash");
    object.insert("seq".into(), seq.into());
    object.insert("prev_hash".into(), prev_hash.into());
    let hash = digest(&record);
    record
        .as_object_mut()
        .expect("audit records are JSON objects")
        .insert("hash".into(), hash.clone().into());
    (record.to_string(), hash)
}

/// A record serialised by the request that made it, with gaps where the writer puts
/// `seq`, `prev_hash` and `hash`. Sealing it costs the writer thread two copies and one
/// SHA-256, so the serialisation runs on the requests' cores, not on the single writer.
/// `seal_prepared` gives exactly the bytes `seal` gives (a test holds them equal).
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    /// Canonical JSON without `seq`, `prev_hash` and `hash` values.
    text: String,
    /// Where `"hash":"…"` goes, and on which side of it a comma is needed.
    hash_at: usize,
    hash_comma_before: bool,
    /// Where the 64 hex characters of `prev_hash` go (between its quotes).
    prev_at: usize,
    /// Where the digits of `seq` go.
    seq_at: usize,
}

impl Prepared {
    /// Lays out the record's keys in canonical (sorted) order, leaving the gaps.
    pub(super) fn new(record: Value) -> Self {
        let Value::Object(mut object) = record else {
            panic!("audit records are JSON objects");
        };
        object.remove("hash");
        object.insert("prev_hash".into(), Value::Null);
        object.insert("seq".into(), Value::Null);
        let mut text = String::with_capacity(1024);
        let (mut hash_at, mut hash_comma_before) = (None, false);
        let (mut prev_at, mut seq_at) = (0, 0);
        text.push('{');
        for (index, (key, value)) in object.iter().enumerate() {
            if hash_at.is_none() && key.as_str() > "hash" {
                // Before this entry's separator: `,"hash":"…"` goes here, or `"hash":"…",` first.
                hash_at = Some(text.len());
                hash_comma_before = index > 0;
            }
            if index > 0 {
                text.push(',');
            }
            if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                // Nothing to escape: written as is, without a copy.
                text.push('"');
                text.push_str(key);
                text.push('"');
            } else {
                text.push_str(&Value::String(key.clone()).to_string());
            }
            text.push(':');
            match key.as_str() {
                "prev_hash" => {
                    text.push('"');
                    prev_at = text.len();
                    text.push('"');
                }
                "seq" => seq_at = text.len(),
                // Display writes the JSON straight into `text`.
                _ => write!(text, "{value}").expect("writing to a String cannot fail"),
            }
        }
        text.push('}');
        // "prev_hash" sorts after "hash" and is always present, so the place was found.
        let hash_at = hash_at.expect("prev_hash follows hash");
        Self {
            text,
            hash_at,
            hash_comma_before,
            prev_at,
            seq_at,
        }
    }
}

/// The fast twin of `seal`: returns the same line and hash.
pub(super) fn seal_prepared(prepared: &Prepared, seq: u64, prev_hash: &str) -> (String, String) {
    let Prepared {
        text,
        hash_at,
        hash_comma_before,
        prev_at,
        seq_at,
    } = prepared;
    // In canonical order "hash" < "prev_hash" < "seq", so the gaps come in that order.
    debug_assert!(hash_at <= prev_at && prev_at < seq_at);
    let seq = seq.to_string();
    let mut unhashed = String::with_capacity(text.len() + 96);
    unhashed.push_str(&text[..*prev_at]);
    unhashed.push_str(prev_hash);
    unhashed.push_str(&text[*prev_at..*seq_at]);
    unhashed.push_str(&seq);
    unhashed.push_str(&text[*seq_at..]);
    let hash = hex::encode(Sha256::digest(unhashed.as_bytes()));
    let mut line = String::with_capacity(unhashed.len() + 80);
    line.push_str(&unhashed[..*hash_at]);
    if *hash_comma_before {
        line.push(',');
    }
    line.push_str("\"hash\":\"");
    line.push_str(&hash);
    line.push('"');
    if !hash_comma_before {
        line.push(',');
    }
    line.push_str(&unhashed[*hash_at..]);
    (line, hash)
}

/// serde_json's default map is ordered by key, so `to_string` is canonical.
fn digest(record: &Value) -> String {
    hex::encode(Sha256::digest(record.to_string().as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifySummary {
    pub records: u64,
    pub last_seq: Option<u64>,
    pub last_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub(crate) struct VerifyError {
    pub line: usize,
    pub message: String,
}

/// Checks records one line at a time, from `GENESIS_HASH` (or a given start).
#[derive(Debug, Clone)]
pub(crate) struct ChainVerifier {
    prev: String,
    last_seq: Option<u64>,
    records: u64,
}

/// One record that verified: its parsed form, `seq` and `hash`.
pub(crate) struct Verified {
    pub(crate) record: Value,
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

impl ChainVerifier {
    pub(crate) fn new(start: Option<&str>) -> Self {
        Self {
            prev: start.unwrap_or(GENESIS_HASH).to_owned(),
            last_seq: None,
            records: 0,
        }
    }

    /// Checks the next line (numbered `number` in its file). `torn_if_bad` says the line
    /// is the last of input that did not end with a newline, so a bad one is a torn write.
    pub(crate) fn push(
        &mut self,
        line: &str,
        number: usize,
        torn_if_bad: bool,
    ) -> Result<Verified, VerifyError> {
        let fail = |message: String| VerifyError {
            line: number,
            message,
        };
        let mut record: Value = match serde_json::from_str(line) {
            Ok(record @ Value::Object(_)) => record,
            _ if torn_if_bad => {
                return Err(fail(
                    "torn last line: the writer stopped mid-record (crash?)".into(),
                ));
            }
            _ => return Err(fail("not a JSON object".into())),
        };
        // The hash covers the canonical form; a line that differs from it (spacing,
        // escapes, a duplicated key that a reader might take instead) was altered.
        if record.to_string().as_str() != line {
            return Err(fail(
                "the line is not in canonical form: the record was edited".into(),
            ));
        }
        let object = record.as_object_mut().expect("checked above");
        let Some(Value::String(claimed)) = object.remove("hash") else {
            return Err(fail("no hash field".into()));
        };
        if object.get("prev_hash").and_then(Value::as_str) != Some(self.prev.as_str()) {
            return Err(fail(format!(
                "prev_hash does not match the hash of the record before: a record was removed, inserted or reordered (expected {})",
                self.prev
            )));
        }
        let seq = object
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| fail("no seq field".into()))?;
        match self.last_seq {
            Some(last) if seq != last + 1 => {
                return Err(fail(format!("seq {seq} does not follow {last}")));
            }
            // A chain that starts at the genesis hash starts at seq 0: a log replaced by
            // one numbered past the last checkpoint must not pass as its continuation.
            None if self.prev == GENESIS_HASH && seq != 0 => {
                return Err(fail(format!(
                    "the first record of the chain has seq {seq}, not 0: records before it are missing or the log was replaced"
                )));
            }
            _ => {}
        }
        if digest(&record) != claimed {
            return Err(fail(
                "hash does not match the record's content: the record was edited".into(),
            ));
        }
        self.prev.clone_from(&claimed);
        self.last_seq = Some(seq);
        self.records += 1;
        Ok(Verified {
            record,
            seq,
            hash: claimed,
        })
    }

    pub(crate) fn summary(&self) -> VerifySummary {
        VerifySummary {
            records: self.records,
            last_seq: self.last_seq,
            last_hash: self.prev.clone(),
        }
    }
}

/// Checks a sequence of lines from `GENESIS_HASH` (or `start`). `complete` tells whether
/// the input ended with a newline, so a torn last line can be told from a bad one.
#[cfg(test)]
pub(super) fn verify_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    start: Option<&str>,
    complete: bool,
) -> Result<VerifySummary, VerifyError> {
    let lines: Vec<&str> = lines.into_iter().collect();
    let total = lines.len();
    let mut verifier = ChainVerifier::new(start);
    for (index, line) in lines.into_iter().enumerate() {
        verifier.push(line, index + 1, index + 1 == total && !complete)?;
    }
    Ok(verifier.summary())
}

/// Reads a log file's lines, calling `each` with every line, its number, and whether it
/// is an unterminated last line.
///
/// # Errors
/// The file cannot be read, or `each` fails.
pub(crate) fn for_each_line(
    path: &Path,
    mut each: impl FnMut(&str, usize, bool) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    let io_error = |e: std::io::Error| VerifyError {
        line: 0,
        message: format!("failed to read {}: {e}", path.display()),
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut buffer = String::new();
    let mut number = 0;
    loop {
        buffer.clear();
        if reader.read_line(&mut buffer).map_err(io_error)? == 0 {
            return Ok(());
        }
        number += 1;
        let terminated = buffer.ends_with('\n');
        each(buffer.trim_end_matches('\n'), number, !terminated)?;
    }
}

/// Verifies one file from the start of the chain (or from `start`, the last hash of the file before).
#[cfg(test)]
pub(super) fn verify_file(path: &Path, start: Option<&str>) -> Result<VerifySummary, VerifyError> {
    let mut verifier = ChainVerifier::new(start);
    for_each_line(path, |line, number, torn| {
        verifier.push(line, number, torn).map(|_| ())
    })?;
    Ok(verifier.summary())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain_of(n: u64) -> Vec<String> {
        let mut prev = GENESIS_HASH.to_owned();
        (0..n)
            .map(|seq| {
                let (line, hash) = seal(
                    json!({"request_id": format!("r{seq}"), "outcome": "updated"}),
                    seq,
                    &prev,
                );
                prev = hash;
                line
            })
            .collect()
    }

    fn verify(lines: &[String]) -> Result<VerifySummary, VerifyError> {
        verify_lines(lines.iter().map(String::as_str), None, true)
    }

    #[test]
    fn a_prepared_record_seals_to_exactly_the_reference_bytes() {
        let records = [
            json!({"request_id": "r", "outcome": "updated", "values": {"seq": "x", "hash": "y", "prev_hash": "z"}}),
            json!({"event": "recovered", "time": "t", "truncated_bytes": 3}),
            json!({"a": 1}),
            json!({"zzz": "only keys after hash", "x": [1, {"seq": 2}]}),
            json!({"caller": {"sub": "é\"\n"}, "hash": "stale", "prev_hash": "stale", "seq": 99}),
        ];
        for record in records {
            for (seq, prev) in [
                (0, GENESIS_HASH),
                (12_345_678_901, "ab".repeat(32).as_str()),
            ] {
                let reference = seal(record.clone(), seq, prev);

                let fast = seal_prepared(&Prepared::new(record.clone()), seq, prev);

                assert_eq!(fast, reference, "{record}");
            }
        }
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let summary = verify(&chain_of(5)).unwrap();

        assert_eq!(summary.records, 5);
        assert_eq!(summary.last_seq, Some(4));
    }

    #[test]
    fn an_edited_record_is_named_by_its_line() {
        let mut lines = chain_of(5);
        lines[2] = lines[2].replace("\"updated\"", "\"denied\"");

        let error = verify(&lines).unwrap_err();

        assert_eq!(error.line, 3);
        assert!(error.message.contains("edited"));
    }

    #[test]
    fn a_deleted_or_reordered_record_breaks_the_chain_at_that_line() {
        let mut deleted = chain_of(5);
        deleted.remove(1);
        let mut reordered = chain_of(5);
        reordered.swap(3, 4);

        assert_eq!(verify(&deleted).unwrap_err().line, 2);
        assert_eq!(verify(&reordered).unwrap_err().line, 4);
    }

    #[test]
    fn an_inserted_record_is_caught_even_when_its_own_hash_is_right() {
        let mut lines = chain_of(4);
        let (forged, _) = seal(
            json!({"request_id": "forged", "outcome": "updated"}),
            2,
            GENESIS_HASH,
        );
        lines.insert(2, forged);

        let error = verify(&lines).unwrap_err();

        assert_eq!(error.line, 3);
        assert!(error.message.contains("prev_hash"));
    }

    #[test]
    fn a_line_cut_short_in_the_middle_is_not_mistaken_for_a_torn_tail() {
        let mut lines = chain_of(4);
        lines[1].truncate(15);

        let error = verify(&lines).unwrap_err();

        assert_eq!(error.line, 2);
        assert!(!error.message.contains("torn"));
    }

    #[test]
    fn a_duplicated_key_or_extra_spacing_is_caught_though_the_values_still_hash_right() {
        let lines = chain_of(3);
        let duplicated = lines[1].replacen(
            r#""outcome":"updated""#,
            r#""outcome":"denied","outcome":"updated""#,
            1,
        );
        let spaced = lines[1].replacen(r#""outcome":"updated""#, r#""outcome": "updated""#, 1);

        for altered in [duplicated, spaced] {
            let mut lines = lines.clone();
            lines[1] = altered;

            let error = verify(&lines).unwrap_err();

            assert_eq!(error.line, 2);
            assert!(error.message.contains("canonical"), "{}", error.message);
        }
    }

    #[test]
    fn a_torn_last_line_is_reported_as_torn() {
        let mut lines = chain_of(3);
        lines[2].truncate(10);

        let error = verify_lines(lines.iter().map(String::as_str), None, false).unwrap_err();

        assert_eq!(error.line, 3);
        assert!(error.message.contains("torn"));
    }
}
