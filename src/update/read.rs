//! Reads under the same policy (`GET …/attributes`): the caller's rate limit, the input
//! rules, the view decision (with the target's facts for roles with `target`), the one
//! filter, and an audit record that names what was returned, written before anything
//! is answered. Must not depend on actix or the HTTP wing.

use std::collections::BTreeMap;

use crate::audit::{DecisionRecord, Event, Outcome};
use crate::cognito::DirectoryError;
use crate::input::{PoolId, Username};
use crate::policy::{self, DecisionRequest, ReadDecision, TargetFacts, Visible};
use crate::report::{DeniedAttribute, FieldError};

use super::refusal::{Invalid, Known};
use super::{Facts, Refusal, UpdateFor, UpdateService};

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
        let (pool, user) = self.read_target(who).map_err(|errors| {
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
        // A caller with no role in the pool causes no read of the user.
        let unread = DecisionRequest::about(roles, pool.as_str()).with_facts(claims, None);
        if let Some(denial) = policy::decide_view(&facts.policy, &unread).refusal()
            && denial.code == policy::DenialCode::NoApplicableRole
        {
            let denied = vec![DeniedAttribute::from(denial)];
            return Err((
                Refusal::ReadDenied {
                    denied: denied.clone(),
                },
                Known {
                    decision: Some(read_record(&denied, &[], Vec::new())),
                    ..Known::default()
                },
            ));
        }
        let target = self
            .read_user(&facts.policy, who, &pool, &user)
            .await
            .map_err(|error| bare(Refusal::Upstream(error)))?;
        let request =
            DecisionRequest::about(roles, pool.as_str()).with_facts(claims, Some(&target));
        let decision = policy::decide_view(&facts.policy, &request);
        let denied: Vec<DeniedAttribute> = decision
            .refusal()
            .map(DeniedAttribute::from)
            .into_iter()
            .collect();
        let record = read_record(&denied, &decision.applicable_roles(), conditions(&decision));
        if !denied.is_empty() {
            return Err((
                Refusal::ReadDenied { denied },
                Known {
                    decision: Some(record),
                    ..Known::default()
                },
            ));
        }
        Ok((decision.filter(&target.attributes), record))
    }

    /// The pool and username of a read, by the input rules; every broken rule.
    fn read_target(&self, who: &UpdateFor<'_>) -> Result<(PoolId, Username), Vec<FieldError>> {
        let pool = self.pool_id(who.pool_id);
        let user = Username::parse(who.username);
        match (pool, user) {
            (Ok(pool), Ok(user)) => Ok((pool, user)),
            (pool, user) => Err(pool.err().into_iter().chain(user.err()).collect()),
        }
    }

    /// The user's attributes, and its groups when a condition of the caller's roles
    /// names groups.
    async fn read_user(
        &self,
        policy: &policy::Policy,
        who: &UpdateFor<'_>,
        pool: &PoolId,
        user: &Username,
    ) -> Result<TargetFacts, DirectoryError> {
        let attributes: BTreeMap<String, String> = self.reader.user_attributes(pool, user).await?;
        let groups = match policy.target_needs(&who.caller.roles, pool.as_str()) {
            Some(needs) if needs.groups => Some(self.reader.user_groups(pool, user).await?),
            _ => None,
        };
        Ok(TargetFacts { attributes, groups })
    }
}

fn conditions(decision: &ReadDecision<'_>) -> Vec<crate::audit::ConditionRecord> {
    decision
        .conditions()
        .iter()
        .map(|condition| crate::audit::ConditionRecord {
            role: condition.role.clone(),
            condition: condition.condition.clone(),
            held: condition.held,
        })
        .collect()
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
