//! Reads the audit log in `seq` order from any record on, across rotation: the files are
//! found by the `seq` of their first record, and a file renamed while it is read (the
//! writer rotated it) is read to its end before the next one is opened.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cloud::seq_of;
use crate::audit::log_files;

/// A reader of one replica's log, at the record with `seq == next_seq`.
pub(crate) struct LogReader {
    path: PathBuf,
    next_seq: u64,
    /// The `hash` of the record before `next_seq`, once one was read.
    last_hash: Option<String>,
    open: Option<OpenFile>,
    /// Records that were due but are no longer in the log (deleted files), so far.
    missing: u64,
}

struct OpenFile {
    reader: BufReader<File>,
    inode: u64,
    /// Where the next line starts: the end of the last line taken. Each read starts
    /// here again, so that bytes read ahead (a batch not yet synced, which the writer
    /// may still cut) are never taken from a buffer.
    offset: u64,
}

/// A file of the log, opened once, with the `seq` of its first record.
struct Candidate {
    file: File,
    inode: u64,
    first: u64,
}

impl LogReader {
    pub(crate) fn new(path: &Path, next_seq: u64) -> Self {
        Self {
            path: path.to_owned(),
            next_seq,
            last_hash: None,
            open: None,
            missing: 0,
        }
    }

    /// The `seq` of the next record to read.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The `hash` of the last record read, if any was.
    pub(crate) fn last_hash(&self) -> Option<&str> {
        self.last_hash.as_deref()
    }

    /// How many records were due but no longer in the log.
    pub(crate) fn missing(&self) -> u64 {
        self.missing
    }

    /// At most `max` records with `seq` from `next_seq` up to (not including) `until`,
    /// in order; fewer when the files hold no more yet. Records at or after `until`
    /// are not taken (they may not be durable yet).
    ///
    /// # Errors
    /// A file of the log cannot be read, or a line in it is not JSON. Nothing read in
    /// this call is taken then: the next call starts where this one did.
    pub(crate) fn read(&mut self, until: u64, max: usize) -> std::io::Result<Vec<Value>> {
        let (next_seq, last_hash, missing) = (self.next_seq, self.last_hash.clone(), self.missing);
        let result = self.read_on(until, max);
        if result.is_err() {
            (self.next_seq, self.last_hash, self.missing) = (next_seq, last_hash, missing);
            self.open = None;
        }
        result
    }

    fn read_on(&mut self, until: u64, max: usize) -> std::io::Result<Vec<Value>> {
        let mut records = Vec::new();
        // The inode of a file read to its end without reaching `next_seq`.
        let mut exhausted = None;
        if let Some(open) = &mut self.open {
            open.reader.seek(SeekFrom::Start(open.offset))?;
        }
        while self.next_seq < until && records.len() < max {
            if self.open.is_none() {
                self.open = self.locate(exhausted)?;
                if self.open.is_none() {
                    break;
                }
            }
            let open = self.open.as_mut().expect("opened above");
            let mut next = open.next_line()?;
            if next.is_none() && exhausted != Some(open.inode) && !self.same_file_as_path() {
                // The writer has renamed this file: whatever it wrote before the rename is
                // in it now. Read once more, then go on in the next file.
                let open = self.open.as_mut().expect("opened above");
                next = open.next_line()?;
                if next.is_none() {
                    exhausted = Some(open.inode);
                    self.open = None;
                    continue;
                }
            }
            // The end of what is written (or of a file already finished): nothing more yet.
            let Some((line, length)) = next else { break };
            let open = self.open.as_mut().expect("opened above");
            let record: Value = serde_json::from_slice(&line).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("an audit line is not JSON: {error}"),
                )
            })?;
            let seq = seq_of(&record);
            if seq.is_some_and(|seq| seq >= until) {
                // Written, perhaps not yet synced: not taken, read again next time.
                break;
            }
            open.offset += length;
            let Some(seq) = seq else { continue };
            if seq < self.next_seq {
                continue;
            }
            if seq > self.next_seq {
                self.missing += seq - self.next_seq;
                tracing::error!(
                    from = self.next_seq,
                    to = seq - 1,
                    "audit records due for change events are no longer in the log (deleted?); going on after them"
                );
            }
            self.next_seq = seq + 1;
            self.last_hash = record
                .get("hash")
                .and_then(Value::as_str)
                .map(str::to_owned);
            records.push(record);
        }
        Ok(records)
    }

    /// Whether the open file is still the one at the log's path.
    fn same_file_as_path(&self) -> bool {
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        self.open.as_ref().map(|open| open.inode) == current
    }

    /// Opens the file that holds `next_seq`: the newest whose first record is at or
    /// before it, unless that is `exhausted` (read to its end without it: records are
    /// missing), then the one after. When every file starts after `next_seq`, the
    /// oldest. Each file is opened once, so a rotation between listing and opening
    /// cannot swap it; a gap is looked for twice, after a fresh listing.
    fn locate(&self, exhausted: Option<u64>) -> std::io::Result<Option<OpenFile>> {
        let mut found = self.choose(exhausted)?;
        if found.as_ref().is_some_and(|c| c.first > self.next_seq) {
            found = self.choose(exhausted)?;
        }
        let Some(candidate) = found else {
            return Ok(None);
        };
        let mut file = candidate.file;
        file.seek(SeekFrom::Start(0))?;
        Ok(Some(OpenFile {
            reader: BufReader::with_capacity(256 * 1024, file),
            inode: candidate.inode,
            offset: 0,
        }))
    }

    fn choose(&self, exhausted: Option<u64>) -> std::io::Result<Option<Candidate>> {
        let mut candidates = Vec::new();
        for path in log_files(&self.path)? {
            if let Some(candidate) = open_candidate(&path)? {
                candidates.push(candidate);
            }
        }
        let holding = candidates
            .iter()
            .rposition(|candidate| candidate.first <= self.next_seq);
        let index = match holding {
            Some(at) if Some(candidates[at].inode) == exhausted => at + 1,
            Some(at) => at,
            None => 0,
        };
        Ok((index < candidates.len()).then(|| candidates.swap_remove(index)))
    }
}

impl OpenFile {
    /// The next whole line, without its `\n`, and its length with it; `None` at the end
    /// of what is written (a line not yet ended is left for the next read).
    fn next_line(&mut self) -> std::io::Result<Option<(Vec<u8>, u64)>> {
        let mut line = Vec::new();
        let read = self.reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            if read > 0 {
                self.reader.seek(SeekFrom::Start(self.offset))?;
            }
            return Ok(None);
        }
        let length = line.len() as u64;
        line.pop();
        Ok(Some((line, length)))
    }
}

/// A file of the log opened once, with the `seq` of its first record; `None` for an
/// empty or missing file, or one whose first line is not whole yet.
fn open_candidate(path: &Path) -> std::io::Result<Option<Candidate>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let inode = file.metadata()?.ino();
    let mut line = Vec::new();
    BufReader::new(&file).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    // Every line the writer makes has a seq; anything else is damage to look at, not
    // a file to pass over.
    let first = serde_json::from_slice::<Value>(&line)
        .ok()
        .as_ref()
        .and_then(seq_of)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the first line of {} is not an audit record",
                    path.display()
                ),
            )
        })?;
    Ok(Some(Candidate { file, inode, first }))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn temp_log() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("attrgate-tail-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("audit.jsonl")
    }

    /// Appends raw bytes to the log, as the writer would (or a torn write).
    fn write_raw(path: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    /// Appends records `seqs`, each with the hash `<hash><seq>`.
    fn append_hashed(path: &Path, seqs: std::ops::Range<u64>, hash: &str) {
        for seq in seqs {
            let record = serde_json::json!({"seq": seq, "hash": format!("{hash}{seq}")});
            write_raw(path, format!("{record}\n").as_bytes());
        }
    }

    fn append(path: &Path, seqs: std::ops::Range<u64>) {
        append_hashed(path, seqs, "h");
    }

    fn seqs(records: &[Value]) -> Vec<u64> {
        records.iter().filter_map(seq_of).collect()
    }

    fn rotate(path: &Path, n: u64) {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(format!(".{n:08}"));
        std::fs::rename(path, rotated).unwrap();
    }

    #[test]
    fn reading_starts_at_the_cursor_in_the_rotated_file_that_holds_it_and_goes_on_across_files() {
        let path = temp_log();
        append(&path, 0..5);
        rotate(&path, 1);
        append(&path, 5..9);
        rotate(&path, 2);
        append(&path, 9..12);

        let mut reader = LogReader::new(&path, 3);
        let all = reader.read(u64::MAX, 100).unwrap();

        assert_eq!(seqs(&all), (3..12).collect::<Vec<_>>());
        assert_eq!(reader.next_seq(), 12);
    }

    #[test]
    fn a_file_rotated_while_it_is_read_is_finished_before_the_new_one() {
        let path = temp_log();
        append(&path, 0..3);
        let mut reader = LogReader::new(&path, 0);
        let first = reader.read(u64::MAX, 2).unwrap();
        append(&path, 3..5);
        rotate(&path, 1);
        append(&path, 5..7);

        let rest = reader.read(7, 100).unwrap();

        assert_eq!(seqs(&first), [0, 1]);
        assert_eq!(seqs(&rest), [2, 3, 4, 5, 6]);
    }

    #[test]
    fn nothing_at_or_beyond_until_is_read_and_a_half_written_line_waits() {
        let path = temp_log();
        append(&path, 0..4);
        write_raw(&path, b"{\"seq\": 4, \"ev");
        let mut reader = LogReader::new(&path, 0);

        let durable = reader.read(3, 100).unwrap();
        let rest = reader.read(u64::MAX, 100).unwrap();
        write_raw(&path, b"ent\": \"outcome\"}\n");
        let finished = reader.read(u64::MAX, 100).unwrap();

        assert_eq!(seqs(&durable), [0, 1, 2]);
        assert_eq!(seqs(&rest), [3]);
        assert_eq!(seqs(&finished), [4]);
    }

    #[test]
    fn records_deleted_from_the_log_are_counted_as_missing_and_reading_goes_on() {
        let path = temp_log();
        append(&path, 0..5);
        rotate(&path, 1);
        append(&path, 5..8);
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".00000001");
        std::fs::remove_file(rotated).unwrap();

        let mut reader = LogReader::new(&path, 2);
        let read = reader.read(u64::MAX, 100).unwrap();

        assert_eq!(seqs(&read), [5, 6, 7]);
        assert_eq!(reader.missing(), 3);
    }

    #[test]
    fn bytes_read_ahead_of_the_durable_mark_are_read_again_after_the_writer_cut_and_rewrote_them() {
        let path = temp_log();
        append_hashed(&path, 0..3, "kept");
        let durable_len = std::fs::metadata(&path).unwrap().len();
        append_hashed(&path, 3..5, "cut");
        let mut reader = LogReader::new(&path, 0);

        let first = reader.read(3, 100).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(durable_len)
            .unwrap();
        append_hashed(&path, 3..5, "new");
        let rest = reader.read(5, 100).unwrap();

        assert_eq!(seqs(&first), [0, 1, 2]);
        let hashes: Vec<&str> = rest.iter().map(|r| r["hash"].as_str().unwrap()).collect();
        assert_eq!(hashes, ["new3", "new4"]);
        assert_eq!(reader.last_hash(), Some("new4"));
    }

    #[test]
    fn a_read_that_fails_takes_nothing_and_the_next_one_starts_where_it_did() {
        let path = temp_log();
        append(&path, 0..3);
        write_raw(&path, b"not json\n");
        let mut reader = LogReader::new(&path, 1);

        let failed = reader.read(u64::MAX, 100);

        assert!(failed.is_err());
        assert_eq!(reader.next_seq(), 1);
        assert_eq!(reader.missing(), 0);
    }

    #[test]
    fn a_rotated_file_deleted_in_the_middle_is_counted_missing_and_reading_goes_on_in_the_next() {
        let path = temp_log();
        append(&path, 0..5);
        rotate(&path, 1);
        append(&path, 5..9);
        rotate(&path, 2);
        append(&path, 9..12);
        let mut second = path.as_os_str().to_owned();
        second.push(".00000002");
        std::fs::remove_file(second).unwrap();

        let mut reader = LogReader::new(&path, 3);
        let read = reader.read(u64::MAX, 100).unwrap();

        assert_eq!(seqs(&read), [3, 4, 9, 10, 11]);
        assert_eq!(reader.missing(), 4);
    }

    /// (The narrower race, a rename between reaching the end and looking at the path,
    /// is closed by reading once more after the rename is seen; it has no test: its
    /// window lies between two system calls.)
    #[test]
    fn records_appended_after_the_reader_reached_the_end_and_then_rotated_away_are_read() {
        let path = temp_log();
        append(&path, 0..3);
        let mut reader = LogReader::new(&path, 0);
        let first = reader.read(u64::MAX, 100).unwrap();
        append(&path, 3..5);
        rotate(&path, 1);
        append(&path, 5..7);

        let rest = reader.read(u64::MAX, 100).unwrap();

        assert_eq!(seqs(&first), [0, 1, 2]);
        assert_eq!(seqs(&rest), [3, 4, 5, 6]);
        assert_eq!(reader.missing(), 0);
    }

    #[test]
    fn a_file_whose_first_line_is_not_a_record_is_an_error_not_a_file_passed_over() {
        let path = temp_log();
        append(&path, 0..3);
        rotate(&path, 1);
        std::fs::write(&path, "garbage\n").unwrap();

        let mut reader = LogReader::new(&path, 3);
        let read = reader.read(u64::MAX, 100);

        assert!(
            read.unwrap_err()
                .to_string()
                .contains("not an audit record")
        );
        assert_eq!(reader.missing(), 0);
    }
}
