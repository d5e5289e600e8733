//! Reads the audit log in `seq` order from any record on, across rotation: the files are
//! found by the `seq` of their first record, and a file renamed while it is read (the
//! writer rotated it) is read to its end before the next one is opened.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cloud::seq_of;
use crate::audit::log_files;

/// A reader of one replica's log, at the record with `seq == next_seq`.
pub(crate) struct LogReader {
    path: PathBuf,
    next_seq: u64,
    open: Option<OpenFile>,
    /// Records that were due but are no longer in the log (deleted files), so far.
    missing: u64,
}

struct OpenFile {
    reader: BufReader<File>,
    inode: u64,
    /// A line not yet ended by `\n` (the writer is still writing it).
    partial: Vec<u8>,
}

impl LogReader {
    pub(crate) fn new(path: &Path, next_seq: u64) -> Self {
        Self {
            path: path.to_owned(),
            next_seq,
            open: None,
            missing: 0,
        }
    }

    /// The `seq` of the next record to read.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many records were due but no longer in the log.
    pub(crate) fn missing(&self) -> u64 {
        self.missing
    }

    /// At most `max` records with `seq` from `next_seq` up to (not including) `until`,
    /// in order; fewer when the files hold no more yet.
    ///
    /// # Errors
    /// A file of the log cannot be read, or a line in it is not JSON.
    pub(crate) fn read(&mut self, until: u64, max: usize) -> std::io::Result<Vec<Value>> {
        let mut records = Vec::new();
        let mut relocated = false;
        while self.next_seq < until && records.len() < max {
            if self.open.is_none() {
                self.open = self.locate()?;
                if self.open.is_none() {
                    break;
                }
            }
            let open = self.open.as_mut().expect("opened above");
            let Some(line) = open.next_line()? else {
                // The end of this file. If the writer has moved on to a new file, this one
                // is complete: go on in the next. Otherwise there is nothing more yet.
                if relocated || self.same_file_as_path() {
                    break;
                }
                self.open = None;
                relocated = true;
                continue;
            };
            relocated = false;
            let record: Value = serde_json::from_slice(&line).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("an audit line is not JSON: {error}"),
                )
            })?;
            let Some(seq) = seq_of(&record) else { continue };
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
    /// before it (or the oldest, when every file starts after it).
    fn locate(&self) -> std::io::Result<Option<OpenFile>> {
        let mut chosen: Option<PathBuf> = None;
        for file in log_files(&self.path)? {
            let Some(first) = first_seq(&file)? else {
                continue;
            };
            if first <= self.next_seq || chosen.is_none() {
                chosen = Some(file);
            }
            if first > self.next_seq {
                break;
            }
        }
        let path = chosen.unwrap_or_else(|| self.path.clone());
        match File::open(&path) {
            Ok(file) => {
                let inode = file.metadata()?.ino();
                Ok(Some(OpenFile {
                    reader: BufReader::with_capacity(256 * 1024, file),
                    inode,
                    partial: Vec::new(),
                }))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl OpenFile {
    /// The next whole line, without its `\n`; `None` at the end of what is written.
    fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let read = self.reader.read_until(b'\n', &mut self.partial)?;
        if read == 0 || self.partial.last() != Some(&b'\n') {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.partial);
        line.pop();
        Ok(Some(line))
    }
}

/// The `seq` of a file's first record; `None` for an empty or missing file.
fn first_seq(path: &Path) -> std::io::Result<Option<u64>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut line = Vec::new();
    BufReader::new(file).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<Value>(&line)
        .ok()
        .as_ref()
        .and_then(seq_of))
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

    fn append(path: &Path, seqs: std::ops::Range<u64>) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for seq in seqs {
            writeln!(
                file,
                "{}",
                serde_json::json!({"seq": seq, "event": "outcome"})
            )
            .unwrap();
        }
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
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"seq\": 4, \"ev")
            .unwrap();
        let mut reader = LogReader::new(&path, 0);

        let durable = reader.read(3, 100).unwrap();
        let rest = reader.read(u64::MAX, 100).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"ent\": \"outcome\"}\n")
            .unwrap();
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
}
