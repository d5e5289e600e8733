//! `attrgate policy lint`: checks a policy's grants against one pool's real attribute
//! schema, and reports grants to attributes the pool does not have or cannot change.
//! Must not depend on actix, aws, tokio or the filesystem (the caller fetches the schema).

use serde_saphyr::Spanned;

use super::compile::{IMMUTABLE_ATTRIBUTE, Policy, Verifiable};
use super::diagnostic::{PolicyDiagnostic, PolicyError, suggest};
use super::glob::Glob;
use super::model::RawPolicy;

/// What the linter found, each item located at its grant in the policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintReport {
    /// Grants that name an attribute the pool lacks or cannot change, or a glob that
    /// matches nothing the role could change there. Any of these fails the lint.
    pub problems: Vec<PolicyDiagnostic>,
    /// Worth knowing, not wrong: a glob that also matches immutable attributes, and
    /// roles whose `pools` do not include the pool (not linted).
    pub notes: Vec<PolicyDiagnostic>,
}

/// Lints `policy` (parsed from `source`, whose text gives the locations) against a pool.
/// `attributes` is every attribute of the pool as `(name, mutable)`.
///
/// # Errors
/// `source` is not a valid policy.
pub fn lint(
    source: &str,
    pool_id: &str,
    attributes: &[(&str, bool)],
) -> Result<LintReport, PolicyError> {
    let policy = Policy::parse(source)?;
    let raw: RawPolicy =
        serde_saphyr::from_str(source).map_err(|error| PolicyError::from_yaml(&error))?;
    let linter = Linter {
        policy: &policy,
        pool_id,
        attributes,
    };
    let mut report = LintReport::default();
    for (name, role) in &raw.roles.0 {
        let role_name = name.value.as_str();
        let applies = role.pools.as_ref().is_none_or(|pools| {
            pools
                .iter()
                .filter_map(|glob| Glob::parse(&glob.value).ok())
                .any(|glob| glob.matches(pool_id))
        });
        if !applies {
            report.notes.push(PolicyDiagnostic::at(
                name,
                format!("role {role_name} does not apply to pool {pool_id} (pools); not linted"),
            ));
            continue;
        }
        let deny: Vec<Glob> = role
            .deny
            .iter()
            .filter_map(|glob| Glob::parse(&glob.value).ok())
            .collect();
        for entry in &role.update {
            linter.update(role_name, entry, &deny, &mut report);
        }
        for entry in &role.verify {
            if let Some(flag) = Verifiable::ALL
                .into_iter()
                .find(|v| v.attribute() == entry.value)
                .map(Verifiable::flag)
            {
                linter.exact(
                    entry,
                    &format!("role {role_name}, verify"),
                    flag,
                    &mut report,
                );
            }
        }
        for (key, _) in &role.constraints.0 {
            let context = format!("role {role_name}, constraint");
            linter.exact(key, &context, &key.value, &mut report);
        }
    }
    Ok(report)
}

struct Linter<'a> {
    policy: &'a Policy,
    pool_id: &'a str,
    attributes: &'a [(&'a str, bool)],
}

impl Linter<'_> {
    fn mutability(&self, name: &str) -> Option<bool> {
        self.attributes
            .iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|(_, mutable)| *mutable)
    }

    /// A grant of one exact attribute: it must exist in the pool and be mutable.
    fn exact(&self, node: &Spanned<String>, context: &str, name: &str, report: &mut LintReport) {
        let pool = self.pool_id;
        let problem = match self.mutability(name) {
            Some(true) => return,
            Some(false) => format!(
                "{context}: {name} is immutable in pool {pool}, so this grant can never be used"
            ),
            None => {
                let developer = format!("dev:{name}");
                let hint = if self.mutability(&developer).is_some() {
                    Some(developer.as_str())
                } else {
                    suggest(name, self.attributes.iter().map(|(n, _)| *n))
                };
                format!(
                    "{context}: pool {pool} has no attribute {name}{}",
                    hint.map(|h| format!(" (did you mean `{h}`?)"))
                        .unwrap_or_default()
                )
            }
        };
        report.problems.push(PolicyDiagnostic::at(node, problem));
    }

    fn update(&self, role: &str, entry: &Spanned<String>, deny: &[Glob], report: &mut LintReport) {
        let Ok(glob) = Glob::parse(&entry.value) else {
            return;
        };
        // What `policy check` already warns about is not repeated here.
        let blocked = |name: &str| {
            name == IMMUTABLE_ATTRIBUTE
                || Verifiable::from_flag(name).is_some()
                || self.policy.protecting_glob(name).is_some()
                || deny.iter().any(|glob| glob.matches(name))
        };
        let context = format!("role {role}, update");
        if glob.is_literal() {
            if !blocked(glob.as_str()) {
                self.exact(entry, &context, glob.as_str(), report);
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
            report.problems.push(PolicyDiagnostic::at(
                entry,
                format!(
                    "{context}: glob \"{glob}\" matches no attribute role {role} can change in pool {pool}{only}"
                ),
            ));
        } else if !immutable.is_empty() {
            report.notes.push(PolicyDiagnostic::at(
                entry,
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
    use super::lint;

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

    fn messages(items: &[super::PolicyDiagnostic]) -> Vec<(Option<usize>, String)> {
        items.iter().map(|d| (d.line, d.message.clone())).collect()
    }

    #[test]
    fn a_policy_that_fits_the_pool_has_no_problems() {
        // Arrange
        let source = "version: 1\nroles:\n  a:\n    update: [given_name, \"custom:*\"]\n    verify: [email]\n    constraints:\n      \"custom:plan\": {one_of: [free]}\n";

        // Act
        let report = lint(source, "us-east-1_a", POOL).unwrap();

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
        let report = lint(source, "us-east-1_a", POOL).unwrap();

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
        let report = lint(source, "us-east-1_a", &pool).unwrap();

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
        let report = lint(source, "us-east-1_a", POOL).unwrap();

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

    #[test]
    fn an_invalid_policy_is_an_error_not_a_report() {
        // Act
        let error = lint("version: 2\n", "us-east-1_a", POOL).unwrap_err();

        // Assert
        assert_eq!(error.diagnostics[0].line, Some(1));
    }
}
