//! Hot reload of the policy: on SIGHUP, and whenever the policy file changes (watched
//! with `notify`). Each reload loads and validates the file, then swaps it in; a rejected
//! file is logged and counted, and the policy in force stays. Depends on `policy_source`
//! and `metrics` only; nothing here is used by the request path.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::metrics::Metrics;
use crate::policy_source::{LoadError, PolicySource, Reloaded};

/// How long to wait after a change before reading the file, so that an editor's
/// burst of writes and renames is read once, complete.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(250);

/// Kubernetes swaps a mounted ConfigMap by renaming this symlink in the same directory.
const CONFIGMAP_DATA_LINK: &str = "..data";

/// What asked for a reload; it only shows up in the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    Signal,
    FileChanged,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Signal => "SIGHUP",
            Self::FileChanged => "file change",
        }
    }
}

/// Reloads the policy and keeps the logs and metrics right about it.
#[derive(Clone)]
pub(crate) struct PolicyReloader {
    source: Arc<PolicySource>,
    metrics: Arc<Metrics>,
}

impl PolicyReloader {
    pub(crate) fn new(source: Arc<PolicySource>, metrics: Arc<Metrics>) -> Self {
        Self { source, metrics }
    }

    /// Loads, validates and swaps in the policy file once.
    ///
    /// # Errors
    /// The file cannot be read or is invalid: the error is logged, counted in
    /// `attrgate_policy_reload_failures_total`, and the policy in force stays.
    pub(crate) fn reload(&self, trigger: Trigger) -> Result<Reloaded, LoadError> {
        let path = self.source.path().display().to_string();
        match self.source.reload() {
            Ok(Reloaded::Replaced { previous, current }) => {
                self.metrics
                    .set_policy_revision(Some(previous.revision()), current.revision());
                self.metrics.policy_reloads.inc();
                for warning in current.warnings() {
                    tracing::warn!(warning = %warning.in_file(&path, "warning"), "policy warning");
                }
                tracing::info!(
                    trigger = trigger.as_str(),
                    policy_file = %path,
                    previous_revision = previous.revision(),
                    revision = current.revision(),
                    "policy reloaded"
                );
                Ok(Reloaded::Replaced { previous, current })
            }
            Ok(Reloaded::Unchanged(current)) => {
                tracing::info!(
                    trigger = trigger.as_str(),
                    policy_file = %path,
                    revision = current.revision(),
                    "policy file unchanged; nothing to reload"
                );
                Ok(Reloaded::Unchanged(current))
            }
            Err(error) => {
                self.metrics.policy_reload_failures.inc();
                tracing::error!(
                    trigger = trigger.as_str(),
                    policy_file = %path,
                    revision = self.source.current().revision(),
                    %error,
                    "policy reload rejected; the previous policy stays in force"
                );
                Err(error)
            }
        }
    }

    /// Starts reloading on SIGHUP and on changes to the policy file, for as long as the
    /// runtime runs. If the file cannot be watched, SIGHUP still works (logged).
    pub(crate) fn spawn(self) {
        let (sender, receiver) = unbounded_channel();
        let watcher = match watch(self.source.path(), sender.clone()) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(
                    policy_file = %self.source.path().display(),
                    %error,
                    "cannot watch the policy file; reload with SIGHUP instead"
                );
                None
            }
        };
        spawn_sighup(sender);
        tokio::spawn(self.run(receiver, watcher));
    }

    async fn run(
        self,
        mut triggers: UnboundedReceiver<Trigger>,
        _watcher: Option<RecommendedWatcher>,
    ) {
        while let Some(trigger) = triggers.recv().await {
            tokio::time::sleep(DEBOUNCE).await;
            while triggers.try_recv().is_ok() {}
            let reloader = self.clone();
            // File I/O stays off the async workers; the outcome is logged inside.
            let _ = tokio::task::spawn_blocking(move || reloader.reload(trigger)).await;
        }
    }
}

#[cfg(unix)]
fn spawn_sighup(sender: UnboundedSender<Trigger>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    if sender.send(Trigger::Signal).is_err() {
                        break;
                    }
                }
            });
        }
        Err(error) => tracing::warn!(%error, "cannot listen for SIGHUP"),
    }
}

#[cfg(not(unix))]
fn spawn_sighup(_sender: UnboundedSender<Trigger>) {}

/// Watches the file's directory, not the file: editors and ConfigMaps replace the file
/// (write elsewhere, rename over it), which a watch on the old inode would miss.
fn watch(path: &Path, sender: UnboundedSender<Trigger>) -> notify::Result<RecommendedWatcher> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(OsString::from).unwrap_or_default();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) if concerns(&event, &name) => {
                let _ = sender.send(Trigger::FileChanged);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "policy file watch error"),
        })?;
    watcher.watch(&directory, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Whether a directory event may have changed the policy file's content. Opens, reads
/// and metadata changes do not count; otherwise every reload (a read) would trigger one.
fn concerns(event: &Event, name: &OsString) -> bool {
    let mutating = match event.kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
        EventKind::Modify(kind) => !matches!(kind, notify::event::ModifyKind::Metadata(_)),
        EventKind::Access(kind) => matches!(kind, AccessKind::Close(AccessMode::Write)),
    };
    mutating
        && event.paths.iter().any(|path| {
            path.file_name()
                .is_some_and(|file| file == name || file == CONFIGMAP_DATA_LINK)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode};

    const GIVEN_NAME: &str = "version: 1\nroles:\n  support:\n    update: [given_name]\n";
    const NICKNAME: &str = "version: 1\nroles:\n  support:\n    update: [nickname]\n";

    fn reloader(source: &str) -> (PathBuf, PolicyReloader, Arc<Metrics>) {
        let dir = std::env::temp_dir().join(format!("attrgate-reload-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.yaml");
        std::fs::write(&path, source).unwrap();
        let policy = Arc::new(PolicySource::load(&path).unwrap());
        let metrics = Arc::new(Metrics::new());
        metrics.set_policy_revision(None, policy.current().revision());
        (path, PolicyReloader::new(policy, metrics.clone()), metrics)
    }

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn a_good_reload_moves_the_revision_label_and_counts_a_reload() {
        // Arrange
        let (path, reloader, metrics) = reloader(GIVEN_NAME);
        let old = reloader.source.current().revision().to_owned();
        std::fs::write(&path, NICKNAME).unwrap();

        // Act
        let reloaded = reloader.reload(Trigger::Signal);

        // Assert
        let new = reloader.source.current().revision().to_owned();
        assert!(matches!(reloaded, Ok(Reloaded::Replaced { .. })));
        let text = metrics.render();
        assert!(text.contains(&format!("attrgate_policy_info{{revision=\"{new}\"}} 1")));
        assert!(
            !text.contains(&old),
            "the old revision label is gone: {text}"
        );
        assert_eq!(metrics.policy_reloads.get(), 1);
        assert_eq!(metrics.policy_reload_failures.get(), 0);
    }

    #[test]
    fn a_bad_reload_counts_a_failure_and_keeps_the_old_policy_and_label() {
        // Arrange
        let (path, reloader, metrics) = reloader(GIVEN_NAME);
        let old = reloader.source.current().revision().to_owned();
        std::fs::write(
            &path,
            "version: 1\nroles:\n  support:\n    update: [\"a[b\"]\n",
        )
        .unwrap();

        // Act
        let reloaded = reloader.reload(Trigger::FileChanged);

        // Assert
        assert!(reloaded.is_err());
        assert_eq!(reloader.source.current().revision(), old);
        assert!(
            metrics
                .render()
                .contains(&format!("attrgate_policy_info{{revision=\"{old}\"}} 1"))
        );
        assert_eq!(metrics.policy_reload_failures.get(), 1);
        assert_eq!(metrics.policy_reloads.get(), 0);
    }

    #[test]
    fn an_unchanged_file_is_neither_a_reload_nor_a_failure() {
        // Arrange
        let (_path, reloader, metrics) = reloader(GIVEN_NAME);

        // Act
        let reloaded = reloader.reload(Trigger::Signal);

        // Assert
        assert!(matches!(reloaded, Ok(Reloaded::Unchanged(_))));
        assert_eq!(metrics.policy_reloads.get(), 0);
        assert_eq!(metrics.policy_reload_failures.get(), 0);
    }

    #[test]
    fn only_content_changes_to_the_policy_file_or_a_configmap_swap_count() {
        let name = OsString::from("policy.yaml");
        let table = [
            (
                event(
                    EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                    "/p/policy.yaml",
                ),
                true,
            ),
            (
                event(EventKind::Create(CreateKind::File), "/p/policy.yaml"),
                true,
            ),
            (
                event(
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                    "/p/policy.yaml",
                ),
                true,
            ),
            (
                event(
                    EventKind::Access(AccessKind::Close(AccessMode::Write)),
                    "/p/policy.yaml",
                ),
                true,
            ),
            (event(EventKind::Create(CreateKind::Any), "/p/..data"), true),
            (
                event(
                    EventKind::Access(AccessKind::Open(AccessMode::Any)),
                    "/p/policy.yaml",
                ),
                false,
            ),
            (
                event(
                    EventKind::Access(AccessKind::Close(AccessMode::Read)),
                    "/p/policy.yaml",
                ),
                false,
            ),
            (
                event(
                    EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
                    "/p/policy.yaml",
                ),
                false,
            ),
            (
                event(
                    EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                    "/p/other.yaml",
                ),
                false,
            ),
        ];
        for (event, expected) in table {
            assert_eq!(concerns(&event, &name), expected, "{event:?}");
        }
    }

    #[tokio::test]
    async fn a_file_replaced_by_rename_is_reloaded_by_the_watcher() {
        // Arrange
        let (path, reloader, metrics) = reloader(GIVEN_NAME);
        let source = reloader.source.clone();
        reloader.spawn();
        let staged = path.with_file_name(".policy.yaml.swp");
        std::fs::write(&staged, NICKNAME).unwrap();

        // Act
        std::fs::rename(&staged, &path).unwrap();

        // Assert
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while metrics.policy_reloads.get() == 0 {
            assert!(std::time::Instant::now() < deadline, "no reload happened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            source.current().revision(),
            crate::policy::Policy::parse(NICKNAME).unwrap().revision()
        );
    }
}
