//! `attrgate policy lint`: checks a policy's grants against one pool's real attribute
//! schema, and reports grants to attributes the pool does not have or cannot change.
//! Must not depend on actix, aws, tokio or the filesystem (the caller fetches the schema).

use serde_saphyr::Location;

use super::compile::{Policy, Role};
use super::diagnostic::PolicyDiagnostic;
use super::glob::Glob;
use crate::attribute::{IMMUTABLE_ATTRIBUTE, developer_alias, is_verified_flag, pool_hint};

/// What the linter found, each item located at its grant in the policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LintReport {
    /// Grants that name an attribute the pool lacks or cannot change, or a glob that
    /// matches nothing the role could change there. Any of these fails the lint.
    pub problems: Vec<PolicyDiagnostic>,
    /// Worth knowing, not wrong: a glob that also matches immutable attributes, and
    /// roles whose `pools` do not include the pool (not linted).
    pub notes: Vec<PolicyDiagnostic>,
}

/// Lints a compiled `policy` against a pool; the locations are the ones the policy
/// was parsed with. `attributes` is every attribute of the pool as `(name, mutable)`.
#[must_use]
pub(crate) fn lint(policy: &Policy, pool_id: &str, attributes: &[(&str, bool)]) -> LintReport {
    let linter = Linter {
        policy,
        pool_id,
        attributes,
    };
    let mut report = LintReport::default();
    linter.alias_notes(&mut report);
    for role in &policy.roles {
        if !role.pools.iter().any(|glob| glob.matches(pool_id)) {
            report.notes.push(PolicyDiagnostic::at_location(
                role.spans.name,
                format!(
                    "role {} does not apply to pool {pool_id} (pools); not linted",
                    role.name
                ),
            ));
            continue;
        }
        linter.role(role, &mut report);
    }
    report
}

struct Linter<'a> {
    policy: &'a Policy,
    pool_id: &'a str,
    attributes: &'a [(&'a str, bool)],
}

impl Linter<'_> {
    fn role(&self, role: &Role, report: &mut LintReport) {
        for (glob, at) in role.update.iter().zip(&role.spans.update) {
            self.update(role, glob, *at, report);
        }
        for (verifiable, at) in role.verify.iter().zip(&role.spans.verify) {
            let context = format!("role {}, verify", role.name);
            self.exact(*at, &context, verifiable.flag(), report);
        }
        for (key, at) in &role.spans.constraints {
            let context = format!("role {}, constraint", role.name);
            self.exact(*at, &context, key, report);
        }
    }

    /// For each literal `protected` or `deny` glob naming one form of a custom
    /// attribute (`custom:x`, `dev:custom:x`) when the pool has the other: a note saying
    /// which form the pool uses (the glob covers both).
    fn alias_notes(&self, report: &mut LintReport) {
        let protected = self.policy.protected.iter().map(|g| ("protected", g));
        let denies = self
            .policy
            .roles
            .iter()
            .flat_map(|role| role.deny.iter().map(|g| ("deny", g)));
        for (kind, glob) in protected.chain(denies) {
            let Some(alias) = glob
                .is_literal()
                .then(|| developer_alias(glob.as_str()))
                .flatten()
            else {
                continue;
            };
            if self.mutability(glob.as_str()).is_none() && self.mutability(&alias).is_some() {
                report.notes.push(PolicyDiagnostic::new(format!(
                    "{kind} \"{glob}\": pool {} has it as {alias}; the glob covers that form too",
                    self.pool_id
                )));
            }
        }
    }

    fn mutability(&self, name: &str) -> Option<bool> {
        self.attributes
            .iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|(_, mutable)| *mutable)
    }

    /// A grant of one exact attribute: it must exist in the pool and be mutable.
    fn exact(&self, at: Location, context: &str, name: &str, report: &mut LintReport) {
        let pool = self.pool_id;
        let problem = match self.mutability(name) {
            Some(true) => return,
            Some(false) => format!(
                "{context}: {name} is immutable in pool {pool}, so this grant can never be used"
            ),
            None => {
                let names: Vec<&str> = self.attributes.iter().map(|(n, _)| *n).collect();
                format!(
                    "{context}: pool {pool} has no attribute {name}{}",
                    pool_hint(name, &names)
                        .map(|h| format!(" (did you mean `{h}`?)"))
                        .unwrap_or_default()
                )
            }
        };
        report
            .problems
            .push(PolicyDiagnostic::at_location(at, problem));
    }

    fn update(&self, role: &Role, glob: &Glob, at: Location, report: &mut LintReport) {
        // What `policy check` already warns about is not repeated here.
        let blocked = |name: &str| {
            name == IMMUTABLE_ATTRIBUTE
                || is_verified_flag(name)
                || self.policy.protecting_glob(name).is_some()
                || role.deny.iter().any(|glob| glob.matches(name))
        };
        let context = format!("role {}, update", role.name);
        let role = role.name.as_str();
        if glob.is_literal() {
            if !blocked(glob.as_str()) {
                self.exact(at, &context, glob.as_str(), report);
            }
            return;
        }
        let matched: Vec<(&str, bool)> = self
            .attributes
            .iter()
            .copied()
            .filter(|(name, _)| glob.matches(name) && !blocked(name))
            .collect();
        let immutable: Vec<&str> = matched
            .iter()
            .filter(|(_, mutable)| !mutable)
            .map(|(name, _)| *name)
            .collect();
        let pool = self.pool_id;
        if matched.len() == immutable.len() {
            let only = if immutable.is_empty() {
                String::new()
            } else {
                format!(" (only immutable ones: {})", immutable.join(", "))
            };
            report.problems.push(PolicyDiagnostic::at_location(
                at,
                format!(
                    "{context}: glob \"{glob}\" matches no attribute role {role} can change in pool {pool}{only}"
                ),
            ));
        } else if !immutable.is_empty() {
            report.notes.push(PolicyDiagnostic::at_location(
                at,
                format!(
                    "{context}: glob \"{glob}\" also matches immutable {} in pool {pool}; requests to change them get 422",
                    immutable.join(", ")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile::Policy;
    use super::{LintReport, PolicyDiagnostic, lint as lint_policy};

    fn lint(source: &str, pool: &str, attributes: &[(&str, bool)]) -> LintReport {
        let policy = Policy::parse(source).expect("valid policy");
        lint_policy(&policy, pool, attributes)
    }

    const POOL: &[(&str, bool)] = &[
        ("sub", false),
        ("given_name", true),
        ("email", true),
        ("email_verified", true),
        ("phone_number", true),
        ("phone_number_verified", true),
        ("birthdate", false),
        ("custom:plan", true),
        ("custom:employee_id", false),
        ("dev:custom:risk", true),
    ];

    fn messages(items: &[PolicyDiagnostic]) -> Vec<(Option<usize>, String)> {
        items.iter().map(|d| (d.line, d.message.clone())).collect()
    }

    #[test]
    fn lint_says_which_form_of_a_protected_custom_attribute_the_pool_uses() {
        // Arrange
        let source =
            "version: 1\nprotected: [\"custom:risk\"]\nroles:\n  a:\n    update: [given_name]\n";

        // Act
        let report = lint(source, "us-east-1_a", POOL);

        // Assert
        assert!(
            report.notes.iter().any(|n| n.message
                == "protected \"custom:risk\": pool us-east-1_a has it as dev:custom:risk; the glob covers that form too"),
            "{:?}",
            report.notes
        );
    }

    #[test]
    fn a_policy_that_fits_the_pool_has_no_problems() {
        // Arrange
        let source = "version: 1\nroles:\n  a:\n    update: [given_name, \"custom:*\"]\n    verify: [email]\n    constraints:\n      \"custom:plan\": {one_of: [free]}\n";

        // Act
        let report = lint(source, "us-east-1_a", POOL);

        // Assert
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(
            messages(&report.notes),
            [(
                Some(4),
                "role a, update: glob \"custom:*\" also matches immutable custom:employee_id in pool us-east-1_a; requests to change them get 422".to_owned()
            )]
        );
    }

    #[test]
    fn grants_to_missing_or_immutable_attributes_are_problems_at_their_line() {
        // Arrange
        let source = r#"version: 1
roles:
  a:
    update:
      - "custom:tier"
      - "custom:employee_id"
      - "custom:risk"
      - "custom:plann"
      - "zz*"
      - "birth*"
    constraints:
      "custom:tier": {max_length: 3}
"#;

        // Act
        let report = lint(source, "us-east-1_a", POOL);

        // Assert
        assert_eq!(
            messages(&report.problems),
            [
                (Some(5), "role a, update: pool us-east-1_a has no attribute custom:tier".to_owned()),
                (Some(6), "role a, update: custom:employee_id is immutable in pool us-east-1_a, so this grant can never be used".to_owned()),
                (Some(7), "role a, update: pool us-east-1_a has no attribute custom:risk (did you mean `dev:custom:risk`?)".to_owned()),
                (Some(8), "role a, update: pool us-east-1_a has no attribute custom:plann (did you mean `custom:plan`?)".to_owned()),
                (Some(9), "role a, update: glob \"zz*\" matches no attribute role a can change in pool us-east-1_a".to_owned()),
                (Some(10), "role a, update: glob \"birth*\" matches no attribute role a can change in pool us-east-1_a (only immutable ones: birthdate)".to_owned()),
                (Some(12), "role a, constraint: pool us-east-1_a has no attribute custom:tier".to_owned()),
            ]
        );
    }

    #[test]
    fn a_verify_grant_needs_the_flag_in_the_pool() {
        // Arrange
        let pool: Vec<(&str, bool)> = POOL
            .iter()
            .copied()
            .filter(|(name, _)| *name != "phone_number_verified")
            .collect();
        let source = "version: 1\nroles:\n  a:\n    verify: [email, phone_number]\n";

        // Act
        let report = lint(source, "us-east-1_a", &pool);

        // Assert
        assert_eq!(
            messages(&report.problems),
            [(
                Some(4),
                "role a, verify: pool us-east-1_a has no attribute phone_number_verified"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn roles_for_other_pools_are_noted_and_not_linted_and_blocked_grants_are_left_to_check() {
        // Arrange
        let source = r#"version: 1
protected: ["custom:employee_id"]
roles:
  eu:
    pools: ["eu-west-1_*"]
    update: ["custom:nothing"]
  a:
    update: ["custom:employee_id", "custom:plan"]
    deny: [birthdate]
"#;

        // Act
        let report = lint(source, "us-east-1_a", POOL);

        // Assert
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(
            messages(&report.notes),
            [(
                Some(4),
                "role eu does not apply to pool us-east-1_a (pools); not linted".to_owned()
            )]
        );
    }
}
