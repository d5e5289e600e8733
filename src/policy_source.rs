//! Loads the policy file and holds the policy in force. Requests take an `Arc` of the
//! current policy, so a replacement never changes a decision already under way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::policy::{Policy, PolicyError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid policy file {path}:\n{source}")]
    Invalid { path: PathBuf, source: PolicyError },
}

pub fn load_policy(path: &Path) -> Result<Policy, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Policy::parse(&source).map_err(|source| LoadError::Invalid {
        path: path.to_owned(),
        source,
    })
}

pub struct PolicySource {
    path: PathBuf,
    current: RwLock<Arc<Policy>>,
}

impl PolicySource {
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(load_policy(path)?)),
        })
    }

    pub fn current(&self) -> Arc<Policy> {
        self.current.read().expect("policy lock").clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
