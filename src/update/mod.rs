//! The attribute update service: the request path of `PATCH …/attributes` without HTTP.
//!
//! - **parse** (`command`): the raw request becomes an `UpdateCommand`, or a `Refusal`;
//! - **authorize**: the policy and the pool's schema give `AllowedChanges`, or a `Refusal`;
//! - **apply**: the intent record, then Cognito, then the outcome record.
//!
//! A refusal's audit record is written in one place (`UpdateService::refuse`), and every
//! record is built afresh from the request's fixed facts (`Facts`). Cognito's update
//! takes a `WritePermit`, which only `AuditLog::append_intent` makes, from the
//! `AllowedChanges` of an allowed decision, once the intent record is durable. Must not
//! depend on actix or the HTTP wing.

mod command;
mod read;
mod refusal;

use std::future::Future;
use std::sync::Arc;

use crate::audit::{
    AuditLog, AuditRecord, ConditionRecord, DecisionRecord, Event, Intent, Outcome, ValueHasher,
};
use crate::cognito::{DirectoryError, UserReader, UserWriter};
use crate::identity::Caller;
use crate::input::{PoolId, Regions, Username};
use crate::limit::RateLimiter;
use crate::metrics::Metrics;
use crate::policy::{
    self, AllowedChanges, Decision, DecisionRequest, Permissions, Policy, TargetFacts,
};
use crate::policy_source::PolicySource;
use crate::report::{DeniedAttribute, FieldError};
use crate::schema_cache::SchemaCache;
use crate::user_lock::{Busy, UserGuard, UserLocks};

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use command::UpdateBody;
#[cfg(test)]
pub(crate) use command::UpdateOptions;
pub(crate) use command::{BodyError, RawUpdate, UpdateCommand};
pub(crate) use refusal::{Invalid, Refusal};

use command::{IfMatch, Target};
use refusal::{Known, Refused};

/// Everything an update needs besides the request itself.
/// Its parts are private: the HTTP wing reaches it only through its methods.
pub(crate) struct UpdateService {
    policy: Arc<PolicySource>,
    audit: AuditLog,
    writer: Arc<dyn UserWriter>,
    /// Reads a target user's facts for the policy's `target` conditions.
    reader: Arc<dyn UserReader>,
    /// `None` when `cognito.validate_schema` is off.
    schemas: Option<SchemaCache>,
    hasher: ValueHasher,
    metrics: Arc<Metrics>,
    limiter: RateLimiter,
    max_body_bytes: usize,
    /// The regions requests may name (`cognito.region`, `cognito.allowed_regions`).
    regions: Regions,
    /// One writer per user.
    locks: UserLocks,
}

/// What an `UpdateService` is built from.
pub(crate) struct UpdateParts {
    pub(crate) policy: Arc<PolicySource>,
    pub(crate) audit: AuditLog,
    pub(crate) writer: Arc<dyn UserWriter>,
    pub(crate) reader: Arc<dyn UserReader>,
    pub(crate) schemas: Option<SchemaCache>,
    pub(crate) hasher: ValueHasher,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limiter: RateLimiter,
    pub(crate) max_body_bytes: usize,
    pub(crate) regions: Regions,
    pub(crate) locks: UserLocks,
}

/// Who asks to update whom, as authenticated and as named in the path.
pub(crate) struct UpdateFor<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) caller: &'a Caller,
    pub(crate) pool_id: &'a str,
    pub(crate) username: &'a str,
}

/// A done update: the names written (or that would be, on a dry run).
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) updated: Vec<String>,
    pub(crate) dry_run: bool,
    /// After a conditional update (`If-Match`): the user's new entity tag.
    pub(crate) etag: Option<String>,
}

/// The facts of one request that every one of its audit records carries.
struct Facts<'a> {
    who: &'a UpdateFor<'a>,
    policy: Arc<Policy>,
}

impl Facts<'_> {
    fn record(&self, event: Event, outcome: Outcome, known: &Known) -> AuditRecord {
        let who = self.who;
        let mut record =
            AuditRecord::new(who.request_id, event, who.caller, who.pool_id, who.username);
        record.policy_revision = self.policy.revision().to_owned();
        record.outcome = outcome;
        record.dry_run = known.dry_run;
        if let Some(requested) = &known.requested {
            record.attributes.clone_from(&requested.names);
            record.values.clone_from(&requested.values);
        }
        record.decision.clone_from(&known.decision);
        record.errors.clone_from(&known.errors);
        record
    }
}

/// What the policy allowed, with the record of the decision.
struct Authorized {
    changes: AllowedChanges,
    decision: DecisionRecord,
    /// For a conditional update: the entity tag the user will have once written.
    etag_after: Option<String>,
}

impl UpdateService {
    pub(crate) fn new(parts: UpdateParts) -> Self {
        let UpdateParts {
            policy,
            audit,
            writer,
            reader,
            schemas,
            hasher,
            metrics,
            limiter,
            max_body_bytes,
            regions,
            locks,
        } = parts;
        Self {
            policy,
            audit,
            writer,
            reader,
            schemas,
            hasher,
            metrics,
            limiter,
            max_body_bytes,
            regions,
            locks,
        }
    }

    /// The largest body an update may have.
    pub(crate) fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Admits one request under the caller's rate limit, or says how long to wait.
    ///
    /// # Errors
    /// The seconds to wait before retrying.
    pub(crate) async fn admit(&self, caller: &Caller) -> Result<(), u64> {
        self.limiter.check(&caller.iss, &caller.sub).await
    }

    /// A pool id from a request, checked against the input rules and the allowed regions.
    ///
    /// # Errors
    /// What is wrong with it.
    pub(crate) fn pool_id(&self, raw: &str) -> Result<PoolId, FieldError> {
        self.regions.pool(raw)
    }

    /// Runs one update: admit and parse, then, holding the user's lock, authorize and
    /// apply. Every request leaves an audit record; when that record cannot be written,
    /// the answer is `AuditUnavailable`.
    pub(crate) async fn update<B>(
        &self,
        who: &UpdateFor<'_>,
        raw: RawUpdate<'_, B>,
    ) -> Result<Done, Refusal>
    where
        B: Future<Output = Result<Vec<u8>, BodyError>>,
    {
        let facts = Facts {
            who,
            policy: self.policy.current(),
        };
        let command = match self.parse(&facts, raw).await {
            Ok(command) => command,
            Err(refused) => return Err(self.refuse(&facts, refused).await),
        };
        // The read of the user's facts (or of its ETag), the decision and the write
        // happen while this request holds the user: no other change made through
        // attrgate falls between them. A caller with no role in the pool is denied
        // without holding anyone (it reads and writes nothing).
        let roles = &who.caller.roles;
        let held = if !facts.policy.has_role_in(roles, command.pool.as_str()) {
            None
        } else {
            match self
                .locks
                .acquire(command.pool.as_str(), command.user.as_str())
                .await
            {
                Ok(held) => Some(held),
                Err(Busy { retry_after_secs }) => {
                    let busy = Refused {
                        refusal: Refusal::UserBusy { retry_after_secs },
                        known: command.known(),
                    };
                    return Err(self.refuse(&facts, busy).await);
                }
            }
        };
        match self.authorize(&facts, &command).await {
            Ok(authorized) => self.apply(&facts, &command, held, authorized).await,
            Err(refused) => Err(self.refuse(&facts, refused).await),
        }
    }

    /// Admission and parse: everything before the user is held.
    async fn parse<B>(
        &self,
        facts: &Facts<'_>,
        raw: RawUpdate<'_, B>,
    ) -> Result<UpdateCommand, Refused>
    where
        B: Future<Output = Result<Vec<u8>, BodyError>>,
    {
        self.limiter
            .check(&facts.who.caller.iss, &facts.who.caller.sub)
            .await
            .map_err(|retry_after_secs| Refused::bare(Refusal::Throttled { retry_after_secs }))?;
        let target = Target {
            pool_id: facts.who.pool_id,
            username: facts.who.username,
            regions: &self.regions,
        };
        command::parse(raw, &target, &self.hasher, self.max_body_bytes).await
    }

    /// The policy's decision (with the target's facts, read when a role's conditions
    /// need them), and the pool's schema for callers the policy lets in.
    async fn authorize(
        &self,
        facts: &Facts<'_>,
        command: &UpdateCommand,
    ) -> Result<Authorized, Refused> {
        let caller = facts.who.caller;
        let upstream = |error| Refused {
            refusal: Refusal::Upstream(error),
            known: command.known(),
        };
        let target = self
            .target_facts(
                &facts.policy,
                caller,
                &command.pool,
                &command.user,
                command.if_match.is_some(),
            )
            .await
            .map_err(upstream)?;
        let decision = policy::decide(
            &facts.policy,
            &DecisionRequest::new(
                &caller.roles,
                command.pool.as_str(),
                command.changes.as_map(),
            )
            .with_facts(&caller.claims, target.as_ref()),
        );
        // The pool's schema is asked only for callers with a role in this pool: anyone
        // else is denied by the policy anyway, and must learn nothing about the pool (nor
        // make attrgate spend Cognito's DescribeUserPool quota on guessed pool ids).
        if let Some(schemas) = &self.schemas
            && !decision.applicable_roles().is_empty()
        {
            match schemas.check(&command.pool, &command.changes).await {
                Ok(Ok(())) => {}
                Ok(Err(errors)) => {
                    return Err(Refused::invalid(Invalid::Schema(errors), command.known()));
                }
                Err(error) => return Err(upstream(error)),
            }
        }
        let record = decision_record(&decision, target.as_ref(), &self.hasher);
        let requested = command.requested.names.len();
        match decision.into_allowed() {
            Ok(changes) => {
                let etag_after = match (&command.if_match, &target) {
                    (None, _) => None,
                    (Some(if_match), Some(target)) => Some(
                        self.check_precondition(facts, command, if_match, target, &changes)
                            .map_err(|refusal| Refused {
                                refusal,
                                known: Known {
                                    decision: Some(record.clone()),
                                    ..command.known()
                                },
                            })?,
                    ),
                    // Conditional, but the user was not read: never write unconditionally.
                    (Some(_), None) => {
                        return Err(Refused {
                            refusal: Refusal::PreconditionFailed,
                            known: Known {
                                decision: Some(record),
                                ..command.known()
                            },
                        });
                    }
                };
                Ok(Authorized {
                    changes,
                    decision: record,
                    etag_after,
                })
            }
            Err(_) => Err(Refused {
                refusal: Refusal::Denied {
                    denied: record.denied.clone(),
                    requested,
                },
                known: Known {
                    decision: Some(record),
                    ..command.known()
                },
            }),
        }
    }

    /// The target user's facts, read once, and only when one of the caller's roles in
    /// the pool has `target` conditions, or when the update is conditional (`If-Match`,
    /// whose tag is computed from the user as it is now) and the caller has a role in
    /// the pool: a caller with no role there causes no read.
    async fn target_facts(
        &self,
        policy: &Policy,
        caller: &Caller,
        pool: &PoolId,
        user: &Username,
        conditional: bool,
    ) -> Result<Option<TargetFacts>, DirectoryError> {
        let needs = policy.target_needs(&caller.roles, pool.as_str());
        let tagged = conditional && policy.has_role_in(&caller.roles, pool.as_str());
        if needs.is_none() && !tagged {
            return Ok(None);
        }
        let groups = needs.is_some_and(|needs| needs.groups);
        self.read_facts(pool, user, groups).await.map(Some)
    }

    /// The user's attributes (AdminGetUser) and, when `groups`, its groups
    /// (AdminListGroupsForUser).
    async fn read_facts(
        &self,
        pool: &PoolId,
        user: &Username,
        groups: bool,
    ) -> Result<TargetFacts, DirectoryError> {
        let attributes = self.reader.user_attributes(pool, user).await?;
        let groups = if groups {
            Some(self.reader.user_groups(pool, user).await?)
        } else {
            None
        };
        Ok(TargetFacts { attributes, groups })
    }

    /// `If-Match` against the user as read now, under the lock: the tag of what the
    /// caller may view of it. Matches: the tag the user will have once `changes` are
    /// written (an empty value deletes). Differs: `PreconditionFailed`.
    fn check_precondition(
        &self,
        facts: &Facts<'_>,
        command: &UpdateCommand,
        if_match: &IfMatch,
        target: &TargetFacts,
        changes: &AllowedChanges,
    ) -> Result<String, Refusal> {
        let caller = facts.who.caller;
        let request = DecisionRequest::about(&caller.roles, command.pool.as_str())
            .with_facts(&caller.claims, Some(target));
        let view = policy::decide_view(&facts.policy, &request);
        let now = self
            .hasher
            .etag(view.filter(&target.attributes).attributes());
        if !if_match.matches(&now) {
            return Err(Refusal::PreconditionFailed);
        }
        let mut after = target.attributes.clone();
        for (name, value) in changes.as_map() {
            if value.is_empty() {
                after.remove(name);
            } else {
                after.insert(name.clone(), value.clone());
            }
        }
        Ok(self.hasher.etag(view.filter(&after).attributes()))
    }

    /// What the caller may do in `pool`; for a named user, with the roles' `target`
    /// conditions evaluated on that user's facts (read as for an update).
    pub(crate) async fn permissions(
        &self,
        caller: &Caller,
        pool: &PoolId,
        user: Option<&Username>,
    ) -> Result<Permissions, DirectoryError> {
        let policy = self.policy.current();
        let target = match user {
            Some(user) => {
                self.target_facts(&policy, caller, pool, user, false)
                    .await?
            }
            None => None,
        };
        // A named user whose facts were not needed: no role has conditions, so the
        // answer is the unconditional one, marked as evaluated for that user.
        let evaluated = target.or_else(|| user.map(|_| TargetFacts::default()));
        let request = DecisionRequest::about(&caller.roles, pool.as_str())
            .with_facts(&caller.claims, evaluated.as_ref());
        Ok(policy::permissions(
            &policy,
            &request,
            user.map(Username::as_str),
        ))
    }

    /// A dry run is recorded and answered; otherwise intent, Cognito, outcome.
    async fn apply(
        &self,
        facts: &Facts<'_>,
        command: &UpdateCommand,
        held: Option<UserGuard>,
        authorized: Authorized,
    ) -> Result<Done, Refusal> {
        let known = Known {
            decision: Some(authorized.decision),
            ..command.known()
        };
        let updated = authorized.changes.names();
        let authorized_etag = authorized.etag_after;
        if command.dry_run {
            self.append(&facts.record(Event::Request, Outcome::DryRun, &known))
                .await?;
            return Ok(Done {
                updated,
                dry_run: true,
                etag: None,
            });
        }
        let intent = Intent::new(
            facts.record(Event::Intent, Outcome::Pending, &known),
            command.pool.clone(),
            command.user.clone(),
        );
        let permit = self
            .audit
            .append_intent(intent, authorized.changes)
            .await
            .map_err(|error| self.audit_failed(&error))?;
        // The Redis lock gets a full Cognito timeout from now; if it expired while this
        // request read and decided, another replica may hold the user: write nothing.
        if let Some(held) = &held
            && let Err(Busy { retry_after_secs }) = held.renew().await
        {
            drop(permit);
            let record = facts.record(Event::Outcome, Outcome::UserBusy, &known);
            self.append(&record).await?;
            return Err(Refusal::UserBusy { retry_after_secs });
        }
        let result = self
            .writer
            .update_attributes(permit, &command.client_metadata)
            .await;
        // Cognito has answered: the user is free for the next change while the outcome
        // is recorded (it changes nothing in Cognito).
        if let Some(held) = held {
            held.release().await;
        }
        let (outcome, cognito_request_id) = match &result {
            Ok(done) => (Outcome::Updated, done.request_id.clone()),
            Err(error) => (
                Refusal::Upstream(error.clone()).outcome(),
                error.request_id.clone(),
            ),
        };
        let mut record = facts.record(Event::Outcome, outcome, &known);
        record.cognito_request_id = cognito_request_id;
        // Cognito has answered: the answer must say what it did even if this record
        // fails (the intent is on disk).
        if let Err(error) = self.append(&record).await {
            tracing::error!(?error, "the outcome record of an update was not written");
        }
        match result {
            Ok(_) => Ok(Done {
                updated,
                dry_run: false,
                etag: authorized_etag,
            }),
            Err(error) => Err(Refusal::Upstream(error)),
        }
    }

    /// Writes a refusal's record, then gives the refusal back; 503 if it cannot be written.
    async fn refuse(&self, facts: &Facts<'_>, refused: Refused) -> Refusal {
        let record = facts.record(Event::Request, refused.refusal.outcome(), &refused.known);
        match self.append(&record).await {
            Ok(()) => refused.refusal,
            Err(unavailable) => unavailable,
        }
    }

    /// Writes one record durably, counting its outcome once written; fails closed.
    async fn append(&self, record: &AuditRecord) -> Result<(), Refusal> {
        match self.audit.append(record).await {
            Ok(()) => {
                self.count(&record.outcome);
                Ok(())
            }
            Err(error) => Err(self.audit_failed(&error)),
        }
    }

    /// A record that could not be written: the request is refused (503), and counted
    /// as `audit_unavailable` rather than as the outcome it would have recorded.
    fn audit_failed(&self, error: &crate::audit::AuditError) -> Refusal {
        tracing::error!(
            error = %crate::report::chain(error),
            "audit write failed; refusing the request"
        );
        self.count(&Outcome::AuditUnavailable);
        Refusal::AuditUnavailable
    }

    fn count(&self, outcome: &Outcome) {
        self.metrics
            .decisions
            .with_label_values(&[outcome.as_str()])
            .inc();
    }
}

/// The decision as its audit records name it: with every evaluated condition, and the
/// target values those conditions read as HMACs, never in clear.
fn decision_record(
    decision: &Decision,
    target: Option<&TargetFacts>,
    hasher: &ValueHasher,
) -> DecisionRecord {
    let target_values = decision
        .conditions()
        .iter()
        .filter_map(|condition| {
            let attribute = condition.attribute.as_ref()?;
            let value = target?.attributes.get(attribute)?;
            Some((attribute.clone(), hasher.hash(value)))
        })
        .collect();
    DecisionRecord {
        allowed: decision.is_allowed(),
        applicable_roles: decision.applicable_roles().to_vec(),
        denied: decision
            .denied()
            .iter()
            .map(DeniedAttribute::from)
            .collect(),
        conditions: condition_records(decision.conditions()),
        target_values,
    }
}

/// Each evaluated `target` condition as an audit record names it.
fn condition_records(conditions: &[crate::policy::ConditionResult]) -> Vec<ConditionRecord> {
    conditions
        .iter()
        .map(|condition| ConditionRecord {
            role: condition.role.clone(),
            condition: condition.condition.clone(),
            held: condition.held,
        })
        .collect()
}
