//! A sink's cursor: the `seq` of the next record it has to consider, in a small JSON
//! file beside the audit log, replaced atomically and fsync'ed after each acknowledged
//! batch. A crash resumes from it: an event may come twice, none is lost.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// The replica whose log this cursor walks.
    pub replica: String,
    /// Every record below this `seq` has been delivered (or was no event).
    pub next_seq: u64,
    /// The `hash` of record `next_seq - 1`: ties the cursor to this very log, so that a
    /// replaced log of the same length is not taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_hash: Option<String>,
}

/// Where the cursor of sink `name` lives: beside `audit_path`, named so that a shipper's
/// `<audit file>*` glob does not pick it up (`attrgate.jsonl` → `attrgate.events-NAME.cursor`).
pub(crate) fn cursor_path(audit_path: &Path, name: &str) -> PathBuf {
    let stem = audit_path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    audit_path.with_file_name(format!("{stem}.events-{name}.cursor"))
}

/// The cursor at `path`; `None` when the sink has none yet.
///
/// # Errors
/// The file exists but cannot be read or is not a cursor.
pub(crate) fn load(path: &Path) -> Result<Option<Cursor>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| format!("{} is not a cursor: {error}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

/// Writes the cursor durably: a temporary file, fsync, rename over the old one, and
/// fsync of the directory.
///
/// # Errors
/// Any step failed; the old cursor is still in place.
pub(crate) fn save(path: &Path, cursor: &Cursor) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = File::create(&temporary)?;
        file.write_all(&serde_json::to_vec(cursor).map_err(std::io::Error::other)?)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_cursor_is_loaded_back_and_no_cursor_is_none() {
        let dir = std::env::temp_dir().join(format!("attrgate-cursor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = cursor_path(&dir.join("attrgate.jsonl"), "crm");
        let cursor = Cursor {
            replica: "gw-1".into(),
            next_seq: 17,
            last_hash: Some("ab12".into()),
        };

        let before = load(&path).unwrap();
        save(&path, &cursor).unwrap();

        assert_eq!(before, None);
        assert_eq!(load(&path).unwrap(), Some(cursor));
        assert_eq!(path.file_name().unwrap(), "attrgate.events-crm.cursor");
        std::fs::write(&path, "nonsense").unwrap();
        assert!(load(&path).unwrap_err().contains("is not a cursor"));
    }
}
