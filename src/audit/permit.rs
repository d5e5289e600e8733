//! The write permit: the one value Cognito's update takes. Only
//! [`AuditLog::append_intent`](super::AuditLog::append_intent) makes one, from
//! [`AllowedChanges`] (which only an allowed policy decision makes) once the intent record
//! that announces exactly those changes is on disk. It is consumed by the write, so one
//! intent record allows one write, of the values decided, to the user it names.
//!
//! Each way around it fails to compile. A permit cannot be forged:
//!
//! ```compile_fail,E0451
//! # fn forge(changes: attrgate::policy::AllowedChanges) {
//! let permit = attrgate::audit::WritePermit {
//!     seq: 0,
//!     request_id: String::new(),
//!     pool_id: todo!(),
//!     username: todo!(),
//!     changes,
//! }; // error[E0451]: its fields are private
//! # }
//! ```
//!
//! nor written twice (it is neither `Copy` nor `Clone`, and the write takes it by value):
//!
//! ```compile_fail,E0382
//! # use attrgate::audit::WritePermit;
//! # use attrgate::cognito::UserWriter;
//! async fn write_twice(writer: &dyn UserWriter, permit: WritePermit) {
//!     let metadata = Default::default();
//!     let _ = writer.update_attributes(permit, &metadata).await;
//!     let _ = writer.update_attributes(permit, &metadata).await; // use of moved value
//! }
//! ```
//!
//! nor changed to write other values than the ones decided (nothing hands out the
//! changes mutably, and `AllowedChanges` has no constructor outside the policy):
//!
//! ```compile_fail,E0596
//! # fn tamper(permit: &attrgate::audit::WritePermit) {
//! let changes = permit.changes().as_map();
//! changes.insert("email_verified".into(), "true".into()); // behind a `&` reference
//! # }
//! ```
//!
//! What does compile is the one write it allows:
//!
//! ```no_run
//! # use attrgate::audit::WritePermit;
//! # use attrgate::cognito::UserWriter;
//! async fn write_once(writer: &dyn UserWriter, permit: WritePermit) {
//!     let metadata = Default::default();
//!     let _ = writer.update_attributes(permit, &metadata).await;
//! }
//! ```

use std::fmt;

use super::record::AuditRecord;
use crate::input::{PoolId, Username};
use crate::policy::AllowedChanges;

/// An intent to write: its record, and the user the write is for. The record is made to
/// name this user and exactly the changes given with it.
pub struct Intent {
    pub(crate) record: AuditRecord,
    pub(crate) pool_id: PoolId,
    pub(crate) username: Username,
}

impl Intent {
    pub(crate) fn new(record: AuditRecord, pool_id: PoolId, username: Username) -> Self {
        Self {
            record,
            pool_id,
            username,
        }
    }
}

/// The right to make one write: exactly `changes`, to `username` in `pool_id`, announced
/// by the intent record `seq`. Not `Clone`, not `Copy`, and its fields are private.
pub struct WritePermit {
    seq: u64,
    request_id: String,
    pool_id: PoolId,
    username: Username,
    changes: AllowedChanges,
}

impl WritePermit {
    pub(super) fn new(
        seq: u64,
        request_id: String,
        pool_id: PoolId,
        username: Username,
        changes: AllowedChanges,
    ) -> Self {
        Self {
            seq,
            request_id,
            pool_id,
            username,
            changes,
        }
    }

    /// The `seq` of the intent record that announced this write.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The request the intent record belongs to.
    #[must_use]
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// What the policy allowed; nothing else can be written with this permit.
    #[must_use]
    pub fn changes(&self) -> &AllowedChanges {
        &self.changes
    }

    pub(crate) fn pool_id(&self) -> &PoolId {
        &self.pool_id
    }

    pub(crate) fn username(&self) -> &Username {
        &self.username
    }
}

/// Names only: values never reach logs.
impl fmt::Debug for WritePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WritePermit")
            .field("seq", &self.seq)
            .field("request_id", &self.request_id)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}
