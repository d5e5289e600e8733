//! Reads under the same policy (`GET …/attributes`): the caller's rate limit, the input
//! rules, the view decision (with the target's facts for roles with `target`), the one
//! filter, and an audit record that names what was returned, written before anything
//! is answered. Must not depend on actix or the HTTP wing.

use std::collections::BTreeMap;

use crate::audit::{DecisionRecord, Event, Outcome};
use crate::policy::{self, DecisionRequest, Visible};
use crate::report::DeniedAttribute;

use super::command::Target;
use super::refusal::{Invalid, Known};
use super::{Facts, Refusal, UpdateFor, UpdateService, condition_records};

/// A done read: what the caller may see of the user, and its entity tag.
#[derive(Debug)]
pub(crate) struct ReadDone {
    pub(crate) visible: Visible,
    pub(crate) etag: String,
}

impl UpdateService {
    /// Reads `who.username`'s attributes as `who.caller` may see them. Every read leaves
    /// an audit record (event `read`) before it answers; when that record cannot be
    /// written, nothing is disclosed (`AuditUnavailable`).
    pub(crate) async fn read(
        &self,
        who: &UpdateFor<'_>,
        path_is_utf8: bool,
    ) -> Result<ReadDone, Refusal> {
        let facts = Facts {
            who,
            policy: self.policy.current(),
        };
        let answer = if path_is_utf8 {
            self.read_visible(&facts).await
        } else {
            Err((Refusal::Invalid(Invalid::Path), Known::default()))
        };
        match answer {
            Ok((visible, decision)) => {
                let mut record = facts.record(Event::Read, Outcome::Read, &Known::default());
                record.attributes = visible.names();
                record.decision = Some(decision);
                self.append(&record).await?;
                let etag = self.hasher.etag(visible.attributes());
                Ok(ReadDone { visible, etag })
            }
            Err((refusal, known)) => {
                let record = facts.record(Event::Read, refusal.outcome(), &known);
                self.append(&record).await?;
                Err(refusal)
            }
        }
    }

    async fn read_visible(
        &self,
        facts: &Facts<'_>,
    ) -> Result<(Visible, DecisionRecord), (Refusal, Known)> {
        let who = facts.who;
        let bare = |refusal| (refusal, Known::default());
        self.limiter
            .check(&who.caller.iss, &who.caller.sub)
            .await
            .map_err(|retry_after_secs| bare(Refusal::Throttled { retry_after_secs }))?;
        let target = Target {
            pool_id: who.pool_id,
            username: who.username,
            regions: &self.regions,
        };
        let (pool, user) = target.parse().map_err(|errors| {
            (
                Refusal::Invalid(Invalid::Input(errors.clone())),
                Known {
                    errors,
                    ..Known::default()
                },
            )
        })?;
        let roles = &who.caller.roles;
        let claims = &who.caller.claims;
        // A caller with no role in the pool causes no read of the user: it is refused
        // by the decision below, made without facts.
        let target = if facts.policy.has_role_in(roles, pool.as_str()) {
            let groups = facts
                .policy
                .target_needs(roles, pool.as_str())
                .is_some_and(|needs| needs.groups);
            let read = self.read_facts(&pool, &user, groups).await;
            Some(read.map_err(|error| bare(Refusal::Upstream(error)))?)
        } else {
            None
        };
        let request =
            DecisionRequest::about(roles, pool.as_str()).with_facts(claims, target.as_ref());
        let decision = policy::decide_view(&facts.policy, &request);
        let denied: Vec<DeniedAttribute> = decision
            .refusal()
            .map(DeniedAttribute::from)
            .into_iter()
            .collect();
        let record = read_record(
            &denied,
            &decision.applicable_roles(),
            condition_records(decision.conditions()),
        );
        if !denied.is_empty() {
            return Err((
                Refusal::ReadDenied { denied },
                Known {
                    decision: Some(record),
                    ..Known::default()
                },
            ));
        }
        let visible = match &target {
            Some(target) => decision.filter(&target.attributes),
            None => decision.filter(&BTreeMap::new()),
        };
        Ok((visible, record))
    }
}

/// A read's decision as its record names it: no target value is recorded (the record
/// names the attributes returned, and a read's conditions need no value to be
/// followed).
fn read_record(
    denied: &[DeniedAttribute],
    applicable_roles: &[String],
    conditions: Vec<crate::audit::ConditionRecord>,
) -> DecisionRecord {
    DecisionRecord {
        allowed: denied.is_empty(),
        applicable_roles: applicable_roles.to_vec(),
        denied: denied.to_vec(),
        conditions,
        target_values: BTreeMap::new(),
    }
}
