//! Validates a policy file and compiles it into an immutable [`Policy`]; every problem is reported with its line and column. Must not depend on actix, aws, tokio or the filesystem.

use std::collections::{BTreeMap, HashMap};

use serde_saphyr::{Location, Spanned};
use sha2::{Digest, Sha256};

use super::constraint::{Constraint, Pattern, Rule};
use super::diagnostic::{PolicyDiagnostic, PolicyError};
use super::glob::Glob;
use super::model::{RawConstraint, RawPolicy, RawRole};
use super::target::{self, Condition, Target};
use crate::attribute::{IMMUTABLE_ATTRIBUTE, Verifiable, developer_alias};
use crate::suggest::closest as suggest;

/// The only policy format version this build understands.
const SUPPORTED_VERSION: i64 = 1;

/// A validated policy. Cheap to clone; immutable once parsed.
#[derive(Debug, Clone)]
pub struct Policy {
    revision: String,
    pub(super) protected: Vec<Glob>,
    /// Globs no role may read.
    pub(super) hidden: Vec<Glob>,
    /// In the order the policy file lists them.
    pub(super) roles: Vec<Role>,
    /// Role name to its index in `roles`, so that a decision costs what the caller's
    /// roles cost, not what the policy's size does.
    index: HashMap<String, usize>,
    warnings: Vec<PolicyDiagnostic>,
}

/// One compiled role.
#[derive(Debug, Clone)]
pub(super) struct Role {
    pub(super) name: String,
    pub(super) pools: Vec<Glob>,
    pub(super) update: Vec<Glob>,
    pub(super) verify: Vec<Verifiable>,
    pub(super) deny: Vec<Glob>,
    /// What the role may read.
    pub(super) view: Vec<Glob>,
    /// Keyed by exact attribute name.
    pub(super) constraints: BTreeMap<String, Constraint>,
    /// Conditions on the target user; `None`: the role applies to any user.
    pub(super) target: Option<Target>,
    /// Where each part was written, for `policy lint`.
    pub(super) spans: RoleSpans,
}

/// Which of the target user's facts a request needs read before it can be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetNeeds {
    /// A condition names groups: AdminListGroupsForUser is needed too.
    pub groups: bool,
}

/// Where a role's name and entries are in the policy file, aligned with the compiled
/// lists (`update[i]` was written at `update[i]`).
#[derive(Debug, Clone)]
pub(super) struct RoleSpans {
    pub(super) name: Location,
    pub(super) update: Vec<Location>,
    pub(super) verify: Vec<Location>,
    pub(super) constraints: Vec<(String, Location)>,
}

impl Policy {
    /// Parses and validates a policy file. Every error found is returned, each with the
    /// line and column it concerns; problems that do not make the policy unsafe are
    /// kept as [`Policy::warnings`].
    ///
    /// # Errors
    /// Every error found: YAML syntax, unknown or duplicate keys, an unknown `version`,
    /// invalid globs or regexes, and constraints or verify entries that make no sense.
    pub fn parse(source: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy =
            serde_saphyr::from_str(source).map_err(|error| PolicyError::from_yaml(&error))?;
        let mut compiler = Compiler::default();
        let protected = compiler.globs(&raw.protected, "protected");
        let hidden = compiler.globs(&raw.hidden, "hidden");
        if raw.version.value != SUPPORTED_VERSION {
            compiler.errors.push(PolicyDiagnostic::at(
                &raw.version,
                format!(
                    "unsupported version {}: this attrgate understands version {SUPPORTED_VERSION}",
                    raw.version.value
                ),
            ));
        }
        if raw.roles.0.is_empty() {
            compiler.warnings.push(PolicyDiagnostic::new(
                "the policy defines no roles, so every request will be denied",
            ));
        }
        let roles: Vec<Role> = raw
            .roles
            .0
            .into_iter()
            .map(|(name, role)| compiler.role(&name, role, &protected))
            .collect();
        let index = roles
            .iter()
            .enumerate()
            .map(|(position, role)| (role.name.clone(), position))
            .collect();
        let (errors, warnings) = compiler.finish();
        if !errors.is_empty() {
            return Err(PolicyError {
                diagnostics: errors,
            });
        }
        Ok(Policy {
            revision: revision_of(source),
            protected: protected.into_iter().map(|glob| glob.value).collect(),
            hidden: strip(hidden),
            roles,
            index,
            warnings,
        })
    }

    /// `sha256:<hex>` of the policy file's bytes, as recorded in the audit log.
    #[must_use]
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Problems that do not make the policy unsafe, such as grants that can never apply.
    #[must_use]
    pub fn warnings(&self) -> &[PolicyDiagnostic] {
        &self.warnings
    }

    /// The role names the policy defines, in file order.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|role| role.name.as_str())
    }

    /// Whether deciding for `caller_roles` in `pool_id` needs the target user's facts:
    /// only when one of the caller's roles that match the pool has a `target`.
    #[must_use]
    pub fn target_needs(&self, caller_roles: &[String], pool_id: &str) -> Option<TargetNeeds> {
        let targets: Vec<&Target> = self
            .applicable_roles(caller_roles, pool_id)
            .into_iter()
            .filter_map(|role| role.target.as_ref())
            .collect();
        (!targets.is_empty()).then(|| TargetNeeds {
            groups: targets
                .iter()
                .flat_map(|target| &target.conditions)
                .any(Condition::needs_groups),
        })
    }

    /// Whether any of the caller's roles applies in `pool_id` (before `target`
    /// conditions): a caller without one causes no Cognito read at all.
    #[must_use]
    pub fn has_role_in(&self, caller_roles: &[String], pool_id: &str) -> bool {
        !self.applicable_roles(caller_roles, pool_id).is_empty()
    }

    /// The caller's roles that the policy names and whose `pools` match `pool_id`, in file order.
    pub(super) fn applicable_roles(&self, caller_roles: &[String], pool_id: &str) -> Vec<&Role> {
        let mut held: Vec<usize> = caller_roles
            .iter()
            .filter_map(|name| self.index.get(name).copied())
            .collect();
        held.sort_unstable();
        held.dedup();
        held.into_iter()
            .map(|position| &self.roles[position])
            .filter(|role| role.pools.iter().any(|pool| pool.matches(pool_id)))
            .collect()
    }

    /// The first `protected` glob matching `attribute`, or its other form
    /// (`custom:x` / `dev:custom:x`).
    pub(super) fn protecting_glob(&self, attribute: &str) -> Option<&Glob> {
        first_match(&self.protected, attribute)
    }
}

/// The first glob matching `attribute` or its other form (`custom:x` / `dev:custom:x`):
/// a protection or a deny written for one form covers the other. Only a glob written
/// for that form counts (`custom:…` or `dev:custom:…`): `dev:*` means developer-only
/// attributes, and does not reach every `custom:` one through its alias.
pub(super) fn first_match<'g>(globs: &'g [Glob], attribute: &str) -> Option<&'g Glob> {
    let alias = developer_alias(attribute);
    globs.iter().find(|glob| {
        glob.matches(attribute)
            || alias.as_deref().is_some_and(|alias| {
                let form = if alias.starts_with("dev:") {
                    "dev:custom:"
                } else {
                    "custom:"
                };
                glob.as_str().starts_with(form) && glob.matches(alias)
            })
    })
}

fn revision_of(source: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(source.as_bytes())))
}

/// Collects errors and warnings while turning the raw model into compiled parts.
#[derive(Default)]
struct Compiler {
    errors: Vec<PolicyDiagnostic>,
    warnings: Vec<PolicyDiagnostic>,
}

impl Compiler {
    /// Errors and warnings in file order.
    fn finish(mut self) -> (Vec<PolicyDiagnostic>, Vec<PolicyDiagnostic>) {
        for list in [&mut self.errors, &mut self.warnings] {
            list.sort_by_key(|d| (d.line.is_none(), d.line, d.column));
        }
        (self.errors, self.warnings)
    }

    fn globs(&mut self, entries: &[Spanned<String>], context: &str) -> Vec<Spanned<Glob>> {
        entries
            .iter()
            .filter_map(|entry| match Glob::parse(&entry.value) {
                Ok(glob) => Some(Spanned::new(glob, entry.referenced, entry.defined)),
                Err(problem) => {
                    self.errors
                        .push(PolicyDiagnostic::at(entry, format!("{context}: {problem}")));
                    None
                }
            })
            .collect()
    }

    fn role(&mut self, name: &Spanned<String>, raw: RawRole, protected: &[Spanned<Glob>]) -> Role {
        let role = name.value.as_str();
        if role.is_empty() || role.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.errors.push(PolicyDiagnostic::at(
                name,
                format!(
                    "role name {role:?} must be non-empty, without whitespace or control characters"
                ),
            ));
        }
        let pools = match &raw.pools {
            None => vec![Glob::any()],
            Some(pools) => {
                if pools.is_empty() {
                    self.warnings.push(PolicyDiagnostic::at(
                        name,
                        format!("role {role} applies to no pool: its pools list is empty"),
                    ));
                }
                strip(self.globs(pools, &format!("role {role}, pools")))
            }
        };
        let update = self.globs(&raw.update, &format!("role {role}, update"));
        let deny = self.globs(&raw.deny, &format!("role {role}, deny"));
        let view = self.globs(&raw.view, &format!("role {role}, view"));
        let verify: Vec<Spanned<Verifiable>> = raw
            .verify
            .iter()
            .filter_map(|entry| self.verifiable(role, entry))
            .collect();
        if raw.update.is_empty() && raw.verify.is_empty() && raw.view.is_empty() {
            self.warnings.push(PolicyDiagnostic::at(
                name,
                format!("role {role} grants nothing: it has no update, verify or view entries"),
            ));
        }
        self.warn_dead_updates(role, &update, &deny, protected);
        self.warn_dead_verifies(role, &verify, &deny, protected);
        let spans = RoleSpans {
            name: name.referenced,
            update: update.iter().map(|glob| glob.referenced).collect(),
            verify: verify.iter().map(|entry| entry.referenced).collect(),
            constraints: raw
                .constraints
                .0
                .iter()
                .map(|(key, _)| (key.value.clone(), key.referenced))
                .collect(),
        };
        let target = raw
            .target
            .as_ref()
            .and_then(|target| target::compile(role, target, &mut self.errors, &mut self.warnings));
        let constraints = raw
            .constraints
            .0
            .into_iter()
            .filter_map(|(attribute, constraint)| {
                let compiled = self.constraint(role, &attribute, constraint, &update)?;
                self.warn_dead_constraint(role, &attribute, &deny, protected);
                Some((attribute.value, compiled))
            })
            .collect();
        Role {
            name: role.to_owned(),
            pools,
            update: strip(update),
            verify: verify.into_iter().map(|v| v.value).collect(),
            deny: strip(deny),
            view: strip(view),
            constraints,
            target,
            spans,
        }
    }

    fn verifiable(&mut self, role: &str, entry: &Spanned<String>) -> Option<Spanned<Verifiable>> {
        if let Some(verifiable) = Verifiable::from_attribute(&entry.value) {
            return Some(Spanned::new(verifiable, entry.referenced, entry.defined));
        }
        let names = Verifiable::ALL.map(Verifiable::attribute);
        let hint = entry
            .value
            .strip_suffix("_verified")
            .and_then(Verifiable::from_attribute)
            .map(Verifiable::attribute)
            .or_else(|| suggest(&entry.value, names))
            .map(|candidate| format!(" (did you mean `{candidate}`?)"))
            .unwrap_or_default();
        self.errors.push(PolicyDiagnostic::at(
            entry,
            format!(
                "role {role}, verify: unknown entry {:?}{hint}; verify takes email and/or phone_number",
                entry.value
            ),
        ));
        None
    }

    fn constraint(
        &mut self,
        role: &str,
        key: &Spanned<String>,
        raw: RawConstraint,
        update: &[Spanned<Glob>],
    ) -> Option<Constraint> {
        let attribute = key.value.as_str();
        let context = format!("role {role}, constraint on {attribute:?}");
        let errors_before = self.errors.len();
        let target_problem = constraint_key_problem(role, attribute, update);
        if let Some(problem) = target_problem {
            self.errors
                .push(PolicyDiagnostic::at(key, format!("{context}: {problem}")));
        }
        if let Some(one_of) = &raw.one_of
            && one_of.value.is_empty()
        {
            self.errors.push(PolicyDiagnostic::at(
                one_of,
                format!("{context}: one_of must list at least one value"),
            ));
        }
        let pattern =
            raw.pattern
                .as_ref()
                .and_then(|pattern| match Pattern::compile(&pattern.value) {
                    Ok(compiled) => Some(compiled),
                    Err(problem) => {
                        self.errors.push(PolicyDiagnostic::at(
                            pattern,
                            format!("{context}: invalid pattern {:?}: {problem}", pattern.value),
                        ));
                        None
                    }
                });
        let max_length =
            raw.max_length
                .as_ref()
                .and_then(|limit| match usize::try_from(limit.value) {
                    Ok(length) if length > 0 => Some(length),
                    _ => {
                        self.errors.push(PolicyDiagnostic::at(
                        limit,
                        format!(
                            "{context}: max_length must be a positive number of characters, not {}",
                            limit.value
                        ),
                    ));
                        None
                    }
                });
        let equals_claim = raw
            .equals_claim
            .as_ref()
            .and_then(|claim| target::claim_name(&context, claim, &mut self.errors));
        if raw.one_of.is_none()
            && raw.pattern.is_none()
            && raw.max_length.is_none()
            && raw.equals_claim.is_none()
        {
            self.errors.push(PolicyDiagnostic::at(
                key,
                format!(
                    "{context}: sets no rule; use one_of, pattern, max_length and/or equals_claim"
                ),
            ));
        }
        let rules = [
            raw.one_of.map(|one_of| Rule::OneOf(one_of.value)),
            pattern.map(Rule::Pattern),
            max_length.map(Rule::MaxLength),
            equals_claim.map(Rule::EqualsClaim),
        ];
        (self.errors.len() == errors_before)
            .then(|| Constraint::new(rules.into_iter().flatten().collect()))
    }

    fn warn_dead_updates(
        &mut self,
        role: &str,
        update: &[Spanned<Glob>],
        deny: &[Spanned<Glob>],
        protected: &[Spanned<Glob>],
    ) {
        for grant in update {
            let glob = &grant.value;
            let why = if let Some(cover) = covering(protected, glob) {
                Some(format!(
                    "every attribute it matches is protected (glob \"{cover}\")"
                ))
            } else if let Some(cover) = covering(deny, glob) {
                Some(format!(
                    "every attribute it matches is denied to role {role} itself (glob \"{cover}\")"
                ))
            } else if let Some(verifiable) = Verifiable::from_flag(glob.as_str()) {
                Some(format!(
                    "update never grants {}; list {} under verify instead",
                    verifiable.flag(),
                    verifiable.attribute()
                ))
            } else if glob.as_str() == IMMUTABLE_ATTRIBUTE {
                Some("sub is never writable".to_owned())
            } else {
                None
            };
            if let Some(why) = why {
                self.warnings.push(PolicyDiagnostic::at(
                    grant,
                    format!("role {role}: update glob \"{glob}\" grants nothing: {why}"),
                ));
            }
        }
    }

    fn warn_dead_verifies(
        &mut self,
        role: &str,
        verify: &[Spanned<Verifiable>],
        deny: &[Spanned<Glob>],
        protected: &[Spanned<Glob>],
    ) {
        for entry in verify {
            let flag = entry.value.flag();
            let why = if let Some(glob) = matching(protected, flag) {
                format!("{flag} is protected (glob \"{glob}\")")
            } else if let Some(glob) = matching(deny, flag) {
                format!("{flag} is denied to role {role} itself (glob \"{glob}\")")
            } else {
                continue;
            };
            self.warnings.push(PolicyDiagnostic::at(
                entry,
                format!(
                    "role {role}: verify {} grants nothing: {why}",
                    entry.value.attribute()
                ),
            ));
        }
    }

    fn warn_dead_constraint(
        &mut self,
        role: &str,
        key: &Spanned<String>,
        deny: &[Spanned<Glob>],
        protected: &[Spanned<Glob>],
    ) {
        let attribute = key.value.as_str();
        let why = if let Some(glob) = matching(protected, attribute) {
            format!("{attribute} is protected (glob \"{glob}\")")
        } else if let Some(glob) = matching(deny, attribute) {
            format!("{attribute} is denied to role {role} itself (glob \"{glob}\")")
        } else {
            return;
        };
        self.warnings.push(PolicyDiagnostic::at(
            key,
            format!("role {role}: the constraint on {attribute:?} never applies: {why}"),
        ));
    }
}

/// What is wrong with a constraint's key: not an exact, writable attribute that one of
/// the role's own `update` globs grants.
fn constraint_key_problem(role: &str, attribute: &str, update: &[Spanned<Glob>]) -> Option<String> {
    if attribute.is_empty() {
        Some("an attribute name may not be empty".to_owned())
    } else if attribute.contains('*') {
        Some("constraint keys are exact attribute names, not globs".to_owned())
    } else if attribute == IMMUTABLE_ATTRIBUTE {
        Some("sub is never writable, so it cannot be constrained".to_owned())
    } else if let Some(verifiable) = Verifiable::from_flag(attribute) {
        Some(format!(
            "{attribute} is granted only by `verify: [{}]`, and constraints apply only to update grants",
            verifiable.attribute()
        ))
    } else if !update.iter().any(|glob| glob.value.matches(attribute)) {
        let literals = update
            .iter()
            .filter(|glob| glob.value.is_literal())
            .map(|glob| glob.value.as_str());
        let hint = suggest(attribute, literals)
            .map(|candidate| format!(" (did you mean `{candidate}`?)"))
            .unwrap_or_default();
        Some(format!(
            "role {role} cannot update {attribute}{hint}: no update glob of the role matches it, so the constraint would never apply"
        ))
    } else {
        None
    }
}

fn strip(globs: Vec<Spanned<Glob>>) -> Vec<Glob> {
    globs.into_iter().map(|glob| glob.value).collect()
}

fn covering<'a>(globs: &'a [Spanned<Glob>], inner: &Glob) -> Option<&'a Glob> {
    globs
        .iter()
        .map(|glob| &glob.value)
        .find(|glob| glob.covers(inner))
}

fn matching<'a>(globs: &'a [Spanned<Glob>], text: &str) -> Option<&'a Glob> {
    globs
        .iter()
        .map(|glob| &glob.value)
        .find(|glob| glob.matches(text))
}

#[cfg(test)]
mod tests {
    use super::Policy;

    const VALID: &str = r#"
version: 1
protected: [sub, "custom:tenant_id"]
roles:
  support:
    pools: ["us-east-1_*"]
    update: [given_name, "custom:plan"]
    verify: [email]
    deny: [phone_number]
    constraints:
      "custom:plan": {one_of: [free, pro], pattern: "[a-z]+", max_length: 4}
  identity-admin:
    update: ["*"]
    verify: [email, phone_number]
"#;

    /// The one error a policy source produces, as (line, message).
    #[test]
    fn each_invalid_target_is_rejected_with_the_line_of_its_error() {
        let role = |target: &str| format!("version: 1\nroles:\n  r:\n    update: [x]\n{target}");
        let table: &[(&str, String, usize, &str)] = &[
            (
                "unknown key under target",
                role("    target:\n      attribute: {}\n"),
                6,
                "unknown key `attribute` (did you mean `attributes`?)",
            ),
            (
                "empty claim name",
                role("    target:\n      attributes:\n        \"custom:t\": {equals_claim: \"\"}\n"),
                7,
                "equals_claim needs a claim name",
            ),
            (
                "any_of: []",
                role("    target:\n      groups: {any_of: []}\n"),
                6,
                "any_of: [] can never hold",
            ),
            (
                "an attribute the input rules refuse",
                role("    target:\n      attributes:\n        tier: {one_of: [a]}\n"),
                7,
                "unknown attribute 'tier': did you mean custom:tier?",
            ),
            (
                "both equals_claim and one_of",
                role("    target:\n      attributes:\n        \"custom:t\": {equals_claim: t, one_of: [a]}\n"),
                7,
                "give exactly one of equals_claim and one_of",
            ),
            (
                "a target without conditions",
                role("    target: {}\n"),
                5,
                "sets no condition",
            ),
            (
                "an empty claim name in a constraint",
                "version: 1\nroles:\n  r:\n    update: [x]\n    constraints:\n      x: {equals_claim: \" \"}\n".to_owned(),
                6,
                "equals_claim needs a claim name",
            ),
        ];
        for (name, source, line, message) in table {
            let (at, text) = only_error(source);
            assert_eq!(at, Some(*line), "{name}: {text}");
            assert!(text.contains(message), "{name}: {text}");
        }
    }

    fn only_error(source: &str) -> (Option<usize>, String) {
        let error = Policy::parse(source).expect_err("the policy is invalid");
        assert_eq!(error.diagnostics.len(), 1, "{error}");
        let diagnostic = &error.diagnostics[0];
        (diagnostic.line, diagnostic.message.clone())
    }

    fn warnings_of(source: &str) -> Vec<(Option<usize>, String)> {
        let policy = Policy::parse(source).unwrap_or_else(|error| panic!("valid policy: {error}"));
        policy
            .warnings()
            .iter()
            .map(|w| (w.line, w.message.clone()))
            .collect()
    }

    #[test]
    fn a_valid_policy_parses_with_its_roles_in_file_order() {
        // Act
        let policy = Policy::parse(VALID).expect("valid");

        // Assert
        assert_eq!(
            policy.role_names().collect::<Vec<_>>(),
            ["support", "identity-admin"]
        );
        assert!(policy.warnings().is_empty(), "{:?}", policy.warnings());
    }

    #[test]
    fn a_policy_can_be_shared_across_threads() {
        fn assert_shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
        assert_shareable::<Policy>();
    }

    #[test]
    fn the_revision_is_the_sha256_of_the_source_bytes() {
        // Act
        let policy = Policy::parse("version: 1\n").expect("valid");
        let other = Policy::parse("version: 1\n# a comment changes the revision\n").expect("valid");

        // Assert
        assert_eq!(
            policy.revision(),
            "sha256:09bfcc6a14b83e2192b8673677725c84883ee9cd0c70e45c9ec09daa8f2b2847"
        );
        assert_ne!(policy.revision(), other.revision());
    }

    const INVALID_POLICIES: &[(&str, &str, usize, &str)] = &[
        (
            "an invalid view glob",
            "version: 1\nroles:\n  a:\n    view: [\"custom:[x]\"]\n",
            4,
            "role a, view: glob \"custom:[x]\"",
        ),
        (
            "an invalid hidden glob",
            "version: 1\nhidden: [\"\"]\nroles:\n  a:\n    view: [x]\n",
            2,
            "hidden:",
        ),
        (
            "a misspelt view key",
            "version: 1\nroles:\n  a:\n    views: [x]\n",
            4,
            "unknown key `views` (did you mean `view`?)",
        ),
        (
            "unknown top-level key",
            "version: 1\nrole:\n  a: {update: [x]}\n",
            2,
            "unknown key `role` (did you mean `roles`?)",
        ),
        (
            "unknown role key",
            "version: 1\nroles:\n  support:\n    updates: [given_name]\n",
            4,
            "unknown key `updates` (did you mean `update`?)",
        ),
        (
            "unknown constraint key",
            "version: 1\nroles:\n  a:\n    update: [x]\n    constraints:\n      x: {oneof: [a]}\n",
            6,
            "unknown key `oneof` (did you mean `one_of`?)",
        ),
        ("missing version", "roles: {}\n", 1, "missing key `version`"),
        (
            "unknown version",
            "version: 2\nroles: {}\n",
            1,
            "unsupported version 2",
        ),
        (
            "version that is not a number",
            "version: one\n",
            1,
            "invalid i64",
        ),
        (
            "duplicate role",
            "version: 1\nroles:\n  a: {update: [x]}\n  a: {update: [y]}\n",
            4,
            "duplicate key `a`",
        ),
        (
            "empty glob",
            "version: 1\nprotected:\n  - sub\n  - \"\"\n",
            4,
            "protected: a glob may not be empty",
        ),
        (
            "glob with a space",
            "version: 1\nroles:\n  a:\n    update: [\"given name\"]\n",
            4,
            "role a, update: glob \"given name\"",
        ),
        (
            "glob with **",
            "version: 1\nroles:\n  a:\n    update: [x]\n    deny: [\"custom:**\"]\n",
            5,
            "role a, deny: glob \"custom:**\"",
        ),
        (
            "pool glob with ?",
            "version: 1\nroles:\n  a:\n    pools: [\"us-east-1_?\"]\n    update: [x]\n",
            4,
            "only * is a wildcard",
        ),
        (
            "invalid regex",
            "version: 1\nroles:\n  a:\n    update: [x]\n    constraints:\n      x:\n        pattern: \"[a-\"\n",
            7,
            "invalid pattern \"[a-\": unclosed character class",
        ),
        (
            "constraint on an attribute the role cannot update",
            "version: 1\nroles:\n  a:\n    update: [\"custom:plan\"]\n    constraints:\n      \"custom:plna\": {max_length: 3}\n",
            6,
            "role a cannot update custom:plna (did you mean `custom:plan`?)",
        ),
        (
            "constraint with a glob key",
            "version: 1\nroles:\n  a:\n    update: [\"custom:*\"]\n    constraints:\n      \"custom:*\": {max_length: 3}\n",
            6,
            "constraint keys are exact attribute names, not globs",
        ),
        (
            "constraint on a verified flag",
            "version: 1\nroles:\n  a:\n    update: [\"*\"]\n    constraints:\n      email_verified: {one_of: [\"true\"]}\n",
            6,
            "email_verified is granted only by `verify: [email]`",
        ),
        (
            "constraint without a rule",
            "version: 1\nroles:\n  a:\n    update: [x]\n    constraints:\n      x: {}\n",
            6,
            "sets no rule",
        ),
        (
            "empty one_of",
            "version: 1\nroles:\n  a:\n    update: [x]\n    constraints:\n      x:\n        one_of: []\n",
            7,
            "one_of must list at least one value",
        ),
        (
            "zero max_length",
            "version: 1\nroles:\n  a:\n    update: [x]\n    constraints:\n      x:\n        max_length: 0\n",
            7,
            "max_length must be a positive number of characters, not 0",
        ),
        (
            "negative max_length",
            "version: 1\nroles:\n  a:\n    update: [x]\n    constraints:\n      x: {max_length: -5}\n",
            6,
            "max_length must be a positive number of characters, not -5",
        ),
        (
            "verify entry written as the flag",
            "version: 1\nroles:\n  a:\n    verify: [email_verified]\n",
            4,
            "unknown entry \"email_verified\" (did you mean `email`?)",
        ),
        (
            "verify entry that is not verifiable",
            "version: 1\nroles:\n  a:\n    verify: [address]\n",
            4,
            "verify takes email and/or phone_number",
        ),
        (
            "role name with a space",
            "version: 1\nroles:\n  \"support team\": {update: [x]}\n",
            3,
            "role name \"support team\"",
        ),
        ("not a mapping", "- version: 1\n", 1, "expected mapping"),
        (
            "wrong type for a list",
            "version: 1\nprotected: sub\n",
            2,
            "expected sequence",
        ),
        ("YAML syntax error", "version: 1\nprotected: [sub\n", 2, ""),
        ("empty file", "", 1, ""),
    ];

    #[test]
    fn each_invalid_policy_is_rejected_with_the_line_of_its_error() {
        let table = INVALID_POLICIES;
        for &(name, source, line, message) in table {
            // Act
            let (actual_line, actual_message) = only_error(source);

            // Assert
            assert_eq!(actual_line, Some(line), "{name}: {actual_message}");
            assert!(
                actual_message.contains(message),
                "{name}: {actual_message:?} lacks {message:?}"
            );
        }
    }

    #[test]
    fn every_semantic_error_is_reported_not_just_the_first() {
        // Arrange
        let source = "version: 3\nprotected: [\"\"]\nroles:\n  a:\n    update: [\"a b\"]\n    verify: [mail]\n";

        // Act
        let error = Policy::parse(source).expect_err("invalid");

        // Assert
        let lines: Vec<_> = error.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(1), Some(2), Some(5), Some(6)], "{error}");
        assert!(
            error
                .to_string()
                .starts_with("line 1, column 10: unsupported version 3"),
            "{error}"
        );
    }

    #[test]
    fn dead_grants_and_other_harmless_mistakes_are_warnings_with_their_lines() {
        // Arrange
        let source = r#"version: 1
protected: [sub, "custom:tenant_*", phone_number_verified]
roles:
  support:
    update:
      - given_name
      - "custom:tenant_id"
      - "email*"
      - email_verified
      - sub
    verify: [email, phone_number]
    deny: ["email*"]
  nobody:
    pools: []
  admin:
    update: ["*"]
    constraints:
      "custom:tenant_region": {max_length: 8}
"#;

        // Act
        let warnings = warnings_of(source);

        // Assert
        let expected: &[(usize, &str)] = &[
            (
                7,
                "update glob \"custom:tenant_id\" grants nothing: every attribute it matches is protected (glob \"custom:tenant_*\")",
            ),
            (
                8,
                "update glob \"email*\" grants nothing: every attribute it matches is denied to role support itself (glob \"email*\")",
            ),
            (
                9,
                "update glob \"email_verified\" grants nothing: every attribute it matches is denied to role support itself",
            ),
            (
                10,
                "update glob \"sub\" grants nothing: every attribute it matches is protected (glob \"sub\")",
            ),
            (
                11,
                "verify email grants nothing: email_verified is denied to role support itself",
            ),
            (
                11,
                "verify phone_number grants nothing: phone_number_verified is protected",
            ),
            (13, "role nobody applies to no pool"),
            (13, "role nobody grants nothing"),
            (
                18,
                "the constraint on \"custom:tenant_region\" never applies: custom:tenant_region is protected",
            ),
        ];
        assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");
        for ((line, message), (expected_line, expected_message)) in warnings.iter().zip(expected) {
            assert_eq!(*line, Some(*expected_line), "{message}");
            assert!(
                message.contains(expected_message),
                "{message:?} lacks {expected_message:?}"
            );
        }
    }

    #[test]
    fn update_globs_naming_a_verified_flag_or_sub_are_warned_about() {
        // Arrange
        let source = "version: 1\nroles:\n  a:\n    update: [phone_number_verified, sub]\n";

        // Act
        let warnings = warnings_of(source);

        // Assert
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].1.contains(
            "update never grants phone_number_verified; list phone_number under verify instead"
        ));
        assert!(warnings[1].1.contains("sub is never writable"));
    }

    #[test]
    fn a_policy_without_roles_is_valid_but_warned_about() {
        // Act
        let warnings = warnings_of("version: 1\n");

        // Assert
        assert_eq!(
            warnings,
            [(
                None,
                "the policy defines no roles, so every request will be denied".to_owned()
            )]
        );
    }

    #[test]
    fn yaml_anchors_and_aliases_are_allowed() {
        // Arrange
        let source = "version: 1\nroles:\n  a:\n    update: &names [given_name, family_name]\n  b:\n    update: *names\n";

        // Act
        let policy = Policy::parse(source).expect("valid");

        // Assert
        assert_eq!(policy.roles[1].update.len(), 2);
    }
}
