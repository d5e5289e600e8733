//! Loads the policy file and holds the policy in force. Requests take an `Arc` of the
//! current policy, so a replacement never changes a decision already under way.
//! Reads the filesystem; depends only on the pure `policy` module.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::policy::{Policy, PolicyDiagnostic, PolicyError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid policy file {path}:\n{listing}", listing = located(path, &source.diagnostics))]
    Invalid { path: PathBuf, source: PolicyError },
}

/// Each diagnostic as `file:line:column: error: message`, one per line.
fn located(path: &Path, diagnostics: &[PolicyDiagnostic]) -> String {
    let file = path.display().to_string();
    diagnostics
        .iter()
        .fold(String::new(), |mut out, diagnostic| {
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = write!(out, "{}", diagnostic.in_file(&file, "error"));
            out
        })
}

pub(crate) fn load_policy(path: &Path) -> Result<Policy, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Policy::parse(&source).map_err(|source| LoadError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// What a successful reload did.
#[derive(Debug, Clone)]
pub(crate) enum Reloaded {
    /// The file holds the policy already in force (same revision); nothing was swapped.
    Unchanged(Arc<Policy>),
    /// A new revision is in force; requests that took `previous` finish on it.
    Replaced {
        previous: Arc<Policy>,
        current: Arc<Policy>,
    },
}

pub(crate) struct PolicySource {
    path: PathBuf,
    current: RwLock<Arc<Policy>>,
}

impl PolicySource {
    pub(crate) fn load(path: &Path) -> Result<Self, LoadError> {
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(load_policy(path)?)),
        })
    }

    pub(crate) fn current(&self) -> Arc<Policy> {
        self.current.read().expect("policy lock").clone()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and validates the file again, and swaps the new policy in atomically.
    ///
    /// # Errors
    /// The file cannot be read or is not a valid policy; the policy in force stays.
    pub(crate) fn reload(&self) -> Result<Reloaded, LoadError> {
        // Parsed outside the lock: readers never wait on the filesystem.
        let policy = Arc::new(load_policy(&self.path)?);
        let mut current = self.current.write().expect("policy lock");
        if current.revision() == policy.revision() {
            return Ok(Reloaded::Unchanged(current.clone()));
        }
        let previous = std::mem::replace(&mut *current, policy.clone());
        Ok(Reloaded::Replaced {
            previous,
            current: policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN_NAME: &str = "version: 1\nroles:\n  support:\n    update: [given_name]\n";
    const NICKNAME: &str = "version: 1\nroles:\n  support:\n    update: [nickname]\n";

    fn temp_policy(source: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("attrgate-source-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.yaml");
        std::fs::write(&path, source).unwrap();
        path
    }

    #[test]
    fn a_reload_swaps_in_the_new_revision_and_an_earlier_arc_keeps_the_old_one() {
        // Arrange
        let path = temp_policy(GIVEN_NAME);
        let source = PolicySource::load(&path).unwrap();
        let in_flight = source.current();
        std::fs::write(&path, NICKNAME).unwrap();

        // Act
        let reloaded = source.reload().unwrap();

        // Assert
        let Reloaded::Replaced { previous, current } = reloaded else {
            panic!("expected a replacement");
        };
        assert_eq!(previous.revision(), in_flight.revision());
        assert_eq!(source.current().revision(), current.revision());
        assert_ne!(current.revision(), in_flight.revision());
        assert_eq!(in_flight.role_names().count(), 1, "the old Arc is intact");
    }

    #[test]
    fn a_reload_of_identical_bytes_is_unchanged() {
        // Arrange
        let path = temp_policy(GIVEN_NAME);
        let source = PolicySource::load(&path).unwrap();

        // Act
        let reloaded = source.reload().unwrap();

        // Assert
        assert!(matches!(reloaded, Reloaded::Unchanged(_)), "{reloaded:?}");
    }

    #[test]
    fn an_invalid_file_is_rejected_and_the_policy_in_force_stays() {
        // Arrange
        let path = temp_policy(GIVEN_NAME);
        let source = PolicySource::load(&path).unwrap();
        let before = source.current().revision().to_owned();
        std::fs::write(&path, "version: 2\nroles:\n  support:\n    updates: [x]\n").unwrap();

        // Act
        let error = source.reload().unwrap_err();

        // Assert
        assert_eq!(source.current().revision(), before);
        let message = error.to_string();
        assert!(
            message.contains(&format!(
                "{}:4:5: error: unknown key `updates`",
                path.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error_and_the_policy_in_force_stays() {
        // Arrange
        let path = temp_policy(GIVEN_NAME);
        let source = PolicySource::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        // Act
        let error = source.reload().unwrap_err();

        // Assert
        assert!(matches!(error, LoadError::Read { .. }), "{error}");
        assert_eq!(source.current().role_names().count(), 1);
    }
}
