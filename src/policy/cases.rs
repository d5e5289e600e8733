//! Table-driven policy cases for `attrgate policy test FILE CASES.yaml`: parse a case file and run it against a policy. Must not depend on actix, aws, tokio or the filesystem.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::compile::Policy;
use super::decide::{Denial, DenialCode, decide};
use super::diagnostic::{PolicyDiagnostic, PolicyError};
use super::facts::{Claims, DecisionRequest, TargetFacts};
use super::view::{WHOLE_USER, decide_view};

/// A parsed case file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaseFile {
    pub cases: Vec<Case>,
}

/// One request and the outcome the policy must give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Case {
    pub name: String,
    /// What the case asks: a write of `attributes` (the default), or a read of the
    /// target user (`action: view`).
    pub action: Action,
    pub roles: Vec<String>,
    pub pool: String,
    pub attributes: BTreeMap<String, String>,
    /// The caller's named claims (the issuer's `claims`).
    pub claims: Claims,
    /// The target user's facts, for roles with `target` conditions.
    pub target: Option<TargetFacts>,
    pub expect: Expect,
    /// When given, the set of denied attribute names must equal it exactly, and each
    /// entry that names a code must be denied with that code.
    pub denied: Option<Vec<ExpectedDenial>>,
    /// For `action: view`: the names a read of `target.attributes` must return, exactly.
    pub visible: Option<Vec<String>>,
    /// The 1-based line of the case's `name`, when known, so a failure can point at it.
    pub line: Option<usize>,
}

/// One attribute a case expects to be denied: written as a plain name, or as
/// `{attribute, code}` to also assert the denial code.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum ExpectedDenial {
    Name(String),
    Coded(CodedDenial),
}

/// `{attribute: NAME, code: CODE}` in a case's `denied` list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodedDenial {
    pub attribute: String,
    pub code: DenialCode,
}

impl ExpectedDenial {
    #[must_use]
    pub(crate) fn attribute(&self) -> &str {
        match self {
            Self::Name(attribute) | Self::Coded(CodedDenial { attribute, .. }) => attribute,
        }
    }

    #[must_use]
    pub(crate) fn code(&self) -> Option<DenialCode> {
        match self {
            Self::Name(_) => None,
            Self::Coded(coded) => Some(coded.code),
        }
    }
}

/// What a case asks the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// `PATCH`: may the caller set `attributes`?
    #[default]
    Update,
    /// `GET`: what may the caller read of the target user?
    View,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Expect {
    Allow,
    Deny,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        })
    }
}

/// The outcome of one case.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct CaseResult {
    pub name: String,
    /// The line of the case in its file, when known.
    pub line: Option<usize>,
    pub passed: bool,
    pub expected: Expect,
    /// What was denied (for a refused read, the whole user: `*`).
    pub denied: Vec<Denial>,
    /// Why the case failed; `None` when it passed.
    pub message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaseFile {
    cases: Spanned<Vec<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Spanned<String>,
    #[serde(default)]
    action: Action,
    #[serde(default)]
    roles: Vec<String>,
    pool: Spanned<String>,
    #[serde(default)]
    attributes: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    claims: BTreeMap<String, ClaimValue>,
    #[serde(default)]
    target: Option<RawCaseTarget>,
    expect: Spanned<Expect>,
    #[serde(default)]
    denied: Option<Spanned<Vec<ExpectedDenial>>>,
    #[serde(default)]
    visible: Option<Spanned<Vec<String>>>,
}

/// A claim in a case: one string, or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum ClaimValue {
    One(String),
    Many(Vec<String>),
}

/// `target:` of a case: the facts Cognito would have for the target user.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaseTarget {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Absent: the groups are unknown, and a condition on groups is an error.
    #[serde(default)]
    groups: Option<Vec<String>>,
}

/// Parses and checks a case file.
///
/// # Errors
/// Every problem found (YAML, unknown keys, duplicate or contradictory cases), each with its line.
pub(crate) fn parse_cases(source: &str) -> Result<CaseFile, PolicyError> {
    let raw: RawCaseFile =
        serde_saphyr::from_str(source).map_err(|error| PolicyError::from_yaml(&error))?;
    let mut errors = Vec::new();
    if raw.cases.value.is_empty() {
        errors.push(PolicyDiagnostic::at(
            &raw.cases,
            "the case file has no cases",
        ));
    }
    let mut names = HashSet::new();
    for case in &raw.cases.value {
        check_case(case, &mut names, &mut errors);
    }
    if !errors.is_empty() {
        return Err(PolicyError {
            diagnostics: errors,
        });
    }
    let cases = raw.cases.value.into_iter().map(into_case).collect();
    Ok(CaseFile { cases })
}

/// Every problem of one case: an empty or duplicate name, an empty pool or attribute
/// map, and a `denied` list that contradicts `expect` or names another attribute.
fn check_case<'a>(
    case: &'a RawCase,
    names: &mut HashSet<&'a str>,
    errors: &mut Vec<PolicyDiagnostic>,
) {
    let name = &case.name.value;
    if name.trim().is_empty() {
        errors.push(PolicyDiagnostic::at(
            &case.name,
            "a case name may not be empty",
        ));
    } else if !names.insert(name.as_str()) {
        errors.push(PolicyDiagnostic::at(
            &case.name,
            format!("duplicate case name {name:?}"),
        ));
    }
    if case.pool.value.is_empty() {
        errors.push(PolicyDiagnostic::at(
            &case.pool,
            format!("case {name:?}: pool may not be empty"),
        ));
    }
    match (case.action, &case.attributes) {
        (Action::Update, None) => errors.push(PolicyDiagnostic::at(
            &case.name,
            format!("case {name:?}: attributes must name at least one attribute"),
        )),
        (Action::Update, Some(attributes)) if attributes.value.is_empty() => {
            errors.push(PolicyDiagnostic::at(
                attributes,
                format!("case {name:?}: attributes must name at least one attribute"),
            ));
        }
        (Action::View, Some(attributes)) => errors.push(PolicyDiagnostic::at(
            attributes,
            format!(
                "case {name:?}: action: view reads target.attributes; a view case takes no attributes"
            ),
        )),
        _ => {}
    }
    if case.action == Action::View && case.target.is_none() {
        errors.push(PolicyDiagnostic::at(
            &case.name,
            format!("case {name:?}: action: view needs `target: {{attributes: {{...}}}}`, the user it reads"),
        ));
    }
    if let Some(visible) = &case.visible {
        if case.action != Action::View {
            errors.push(PolicyDiagnostic::at(
                visible,
                format!("case {name:?}: visible applies only to action: view"),
            ));
        } else if case.expect.value == Expect::Deny && !visible.value.is_empty() {
            errors.push(PolicyDiagnostic::at(
                visible,
                format!("case {name:?}: expect: deny reads nothing, so visible must be empty"),
            ));
        }
    }
    if let Some(denied) = &case.denied {
        let contradiction = match case.expect.value {
            Expect::Allow => {
                (!denied.value.is_empty()).then_some("expect: allow cannot list denied attributes")
            }
            Expect::Deny => denied
                .value
                .is_empty()
                .then_some("expect: deny needs at least one denied attribute"),
        };
        if let Some(contradiction) = contradiction {
            errors.push(PolicyDiagnostic::at(
                denied,
                format!("case {name:?}: {contradiction}"),
            ));
        }
        let named = |attribute: &str| match (&case.attributes, case.action) {
            (_, Action::View) => attribute == WHOLE_USER,
            (Some(attributes), Action::Update) => attributes.value.contains_key(attribute),
            (None, Action::Update) => false,
        };
        if let Some(stray) = denied
            .value
            .iter()
            .map(ExpectedDenial::attribute)
            .find(|a| !named(a))
        {
            errors.push(PolicyDiagnostic::at(
                denied,
                format!("case {name:?}: denied lists {stray:?}, which is not among its attributes"),
            ));
        }
    }
}

/// A checked raw case as `run_cases` takes it.
fn into_case(case: RawCase) -> Case {
    Case {
        line: PolicyDiagnostic::line_of(&case.name),
        name: case.name.value,
        action: case.action,
        roles: case.roles,
        pool: case.pool.value,
        attributes: case.attributes.map(|a| a.value).unwrap_or_default(),
        claims: case
            .claims
            .into_iter()
            .map(|(name, value)| {
                let values = match value {
                    ClaimValue::One(one) => vec![one],
                    ClaimValue::Many(many) => many,
                };
                (name, values)
            })
            .collect(),
        target: case.target.map(|target| TargetFacts {
            attributes: target.attributes,
            groups: target.groups,
        }),
        expect: case.expect.value,
        denied: case.denied.map(|denied| denied.value),
        visible: case.visible.map(|visible| visible.value),
    }
}

/// Runs every case against `policy`, in file order.
#[must_use]
pub(crate) fn run_cases(policy: &Policy, cases: &CaseFile) -> Vec<CaseResult> {
    cases
        .cases
        .iter()
        .map(|case| run_case(policy, case))
        .collect()
}

fn run_case(policy: &Policy, case: &Case) -> CaseResult {
    let request = DecisionRequest::new(&case.roles, &case.pool, &case.attributes)
        .with_facts(&case.claims, case.target.as_ref());
    let (denied, lacked_facts, mut problems) = match case.action {
        Action::Update => {
            let decision = decide(policy, &request);
            (
                decision.denied().to_vec(),
                decision.lacked_target_facts(),
                Vec::new(),
            )
        }
        Action::View => view_case(policy, &request, case),
    };
    if lacked_facts {
        problems.insert(
            0,
            "error in the case file: the case reaches a role's target conditions without the facts they need; give `target: {attributes: {...}, groups: [...]}`"
                .to_owned(),
        );
    }
    let actual = if denied.is_empty() {
        Expect::Allow
    } else {
        Expect::Deny
    };
    if actual != case.expect {
        let detail = denied
            .iter()
            .map(|denial| format!("{} ({})", denial.attribute, denial.reason))
            .collect::<Vec<_>>()
            .join(", ");
        problems.push(if detail.is_empty() {
            format!("expected {}, got {actual}", case.expect)
        } else {
            format!("expected {}, got {actual}: {detail}", case.expect)
        });
    }
    if let Some(expected) = &case.denied {
        problems.extend(denied_problems(expected, &denied));
    }
    CaseResult {
        name: case.name.clone(),
        line: case.line,
        passed: problems.is_empty(),
        expected: case.expect,
        denied,
        message: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// A read of the case's target: its denial (the whole user) if refused, whether facts
/// were lacking, and how the visible names differ from the case's `visible`.
fn view_case(
    policy: &Policy,
    request: &DecisionRequest<'_>,
    case: &Case,
) -> (Vec<Denial>, bool, Vec<String>) {
    let decision = decide_view(policy, request);
    let lacked = decision.lacked_target_facts();
    let attributes = case
        .target
        .as_ref()
        .map(|target| target.attributes.clone())
        .unwrap_or_default();
    let visible = decision.filter(&attributes).names();
    let mut problems = Vec::new();
    if let Some(expected) = &case.visible {
        let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
        let actual: BTreeSet<&str> = visible.iter().map(String::as_str).collect();
        if expected != actual {
            problems.push(format!(
                "expected visible [{}], got visible [{}]",
                join(&expected),
                join(&actual)
            ));
        }
    }
    (
        decision.refusal().cloned().into_iter().collect(),
        lacked,
        problems,
    )
}

/// How the denials differ from what a case expects: the set of names, then each code.
fn denied_problems(expected: &[ExpectedDenial], denied: &[Denial]) -> Vec<String> {
    let names: BTreeSet<&str> = expected.iter().map(ExpectedDenial::attribute).collect();
    let actual: BTreeSet<&str> = denied.iter().map(|d| d.attribute.as_str()).collect();
    if names != actual {
        return vec![format!(
            "expected denied [{}], got denied [{}]",
            join(&names),
            join(&actual)
        )];
    }
    expected
        .iter()
        .filter_map(|entry| {
            let code = entry.code()?;
            let denial = denied.iter().find(|d| d.attribute == entry.attribute())?;
            (denial.code != code).then(|| {
                format!(
                    "expected {} denied with code {code}, got {} ({})",
                    denial.attribute, denial.code, denial.reason
                )
            })
        })
        .collect()
}

fn join(names: &BTreeSet<&str>) -> String {
    names.iter().copied().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::compile::Policy;
    use super::{Expect, parse_cases, run_cases};

    #[test]
    fn view_cases_assert_what_a_read_returns_and_a_wrong_list_fails() {
        let policy = Policy::parse(
            "version: 1\nhidden: [\"custom:ssn\"]\nroles:\n  support:\n    view: [given_name, \"custom:*\"]\n",
        )
        .expect("valid");
        let cases = parse_cases(
            r#"
cases:
  - name: support reads names and custom attributes but not the hidden one
    action: view
    roles: [support]
    pool: p_1
    target: {attributes: {given_name: Ann, email: a@x.io, "custom:plan": pro, "custom:ssn": "1"}}
    expect: allow
    visible: [given_name, "custom:plan"]
  - name: a wrong visible list
    action: view
    roles: [support]
    pool: p_1
    target: {attributes: {given_name: Ann, email: a@x.io}}
    expect: allow
    visible: [given_name, email]
  - name: an unknown role reads nothing
    action: view
    roles: [other]
    pool: p_1
    target: {attributes: {given_name: Ann}}
    expect: deny
    denied: [{attribute: "*", code: no_applicable_role}]
"#,
        )
        .expect("valid case file");

        let results = run_cases(&policy, &cases);

        assert!(results[0].passed, "{:?}", results[0].message);
        assert_eq!(
            results[1].message.as_deref(),
            Some("expected visible [email, given_name], got visible [given_name]")
        );
        assert!(results[2].passed, "{:?}", results[2].message);
    }

    #[test]
    fn a_view_case_without_a_target_or_with_attributes_is_an_error_in_the_case_file() {
        let error = parse_cases(
            "cases:\n  - name: a\n    action: view\n    roles: [r]\n    pool: p_1\n    attributes: {x: y}\n    expect: allow\n",
        )
        .unwrap_err()
        .to_string();

        assert!(error.contains("a view case takes no attributes"), "{error}");
        assert!(error.contains("action: view needs `target"), "{error}");
    }

    #[test]
    fn denied_entries_may_assert_codes_beside_plain_names() {
        // Arrange
        let cases = parse_cases(
            r#"
cases:
  - name: right codes
    roles: [support]
    pool: us-east-1_abc
    attributes: {"custom:tenant_id": t2, locale: en, nickname: x}
    expect: deny
    denied: [{attribute: "custom:tenant_id", code: protected}, locale]
  - name: wrong code
    roles: [support]
    pool: us-east-1_abc
    attributes: {locale: en}
    expect: deny
    denied: [{attribute: locale, code: role_deny}]
"#,
        )
        .expect("valid case file");

        // Act
        let results = run_cases(&policy(), &cases);

        // Assert
        assert!(results[0].passed, "{:?}", results[0].message);
        assert_eq!(
            results[1].message.as_deref(),
            Some(
                "expected locale denied with code role_deny, got not_granted (no applicable role grants locale)"
            )
        );
    }

    #[test]
    fn cases_give_claims_and_target_facts_and_one_without_the_facts_it_needs_is_an_error() {
        // Arrange
        let policy = Policy::parse(
            "version: 1\nroles:\n  t:\n    update: [x]\n    target:\n      attributes:\n        \"custom:t\": {equals_claim: tenant}\n",
        )
        .expect("valid");
        let cases = parse_cases(
            r#"
cases:
  - name: same tenant
    roles: [t]
    claims: {tenant: [z, a]}
    pool: p_1
    target: {attributes: {"custom:t": a}}
    attributes: {x: "1"}
    expect: allow
  - name: no facts
    roles: [t]
    claims: {tenant: a}
    pool: p_1
    attributes: {x: "1"}
    expect: deny
"#,
        )
        .expect("valid case file");

        // Act
        let results = run_cases(&policy, &cases);

        // Assert
        assert!(results[0].passed, "{:?}", results[0].message);
        assert!(!results[1].passed);
        assert!(
            results[1]
                .message
                .as_deref()
                .unwrap_or_default()
                .starts_with("error in the case file: the case reaches a role's target conditions"),
            "{:?}",
            results[1].message
        );
    }

    #[test]
    fn an_unknown_denial_code_is_an_error_in_the_case_file() {
        // Act
        let error = parse_cases(
            "cases:\n  - {name: a, pool: p_1, attributes: {x: y}, expect: deny, denied: [{attribute: x, code: nope}]}\n",
        )
        .expect_err("unknown code");

        // Assert
        assert_eq!(error.diagnostics[0].line, Some(2), "{error}");
    }

    const POLICY: &str = r#"
version: 1
protected: ["custom:tenant_id"]
roles:
  support:
    update: [given_name, nickname]
"#;

    fn policy() -> Policy {
        Policy::parse(POLICY).expect("valid")
    }

    #[test]
    fn passing_cases_pass_and_failing_cases_fail_with_a_message() {
        // Arrange
        let cases = parse_cases(
            r#"
cases:
  - name: support renames
    roles: [support]
    pool: us-east-1_abc
    attributes: {given_name: Ann}
    expect: allow
  - name: tenant is protected
    roles: [support]
    pool: us-east-1_abc
    attributes: {"custom:tenant_id": t2, nickname: x}
    expect: deny
    denied: ["custom:tenant_id"]
  - name: wrongly expects allow
    roles: [support]
    pool: us-east-1_abc
    attributes: {locale: en}
    expect: allow
  - name: wrongly expects deny
    roles: [support]
    pool: us-east-1_abc
    attributes: {nickname: x}
    expect: deny
  - name: right outcome, wrong denied set
    roles: [support]
    pool: us-east-1_abc
    attributes: {locale: en, zoneinfo: UTC, nickname: x}
    expect: deny
    denied: [locale]
"#,
        )
        .expect("valid case file");

        // Act
        let results = run_cases(&policy(), &cases);

        // Assert
        let summary: Vec<(&str, bool, Option<&str>)> = results
            .iter()
            .map(|r| (r.name.as_str(), r.passed, r.message.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("support renames", true, None),
                ("tenant is protected", true, None),
                (
                    "wrongly expects allow",
                    false,
                    Some("expected allow, got deny: locale (no applicable role grants locale)")
                ),
                (
                    "wrongly expects deny",
                    false,
                    Some("expected deny, got allow")
                ),
                (
                    "right outcome, wrong denied set",
                    false,
                    Some("expected denied [locale], got denied [locale, zoneinfo]")
                ),
            ]
        );
        assert_eq!(results[1].expected, Expect::Deny);
        assert_eq!(results[0].line, Some(3), "the line of the case's name");
    }

    #[test]
    fn yaml_scalars_in_attribute_values_are_kept_as_written() {
        // Act
        let cases = parse_cases(
            "cases:\n  - {name: n, roles: [a], pool: p_1, attributes: {email_verified: true, x: 1.50, y: ''}, expect: deny}\n",
        )
        .expect("valid");

        // Assert
        let attributes = &cases.cases[0].attributes;
        assert_eq!(attributes["email_verified"], "true");
        assert_eq!(attributes["x"], "1.50");
        assert_eq!(attributes["y"], "");
    }

    #[test]
    fn each_invalid_case_file_is_rejected_with_the_line_of_its_error() {
        let case = |extra: &str| {
            format!("cases:\n  - name: a\n    pool: p_1\n    attributes: {{x: y}}\n{extra}")
        };
        let table: Vec<(&str, String, usize, &str)> = vec![
            (
                "unknown key",
                case("    expect: allow\n    role: [a]\n"),
                6,
                "unknown key `role` (did you mean `roles`?)",
            ),
            (
                "unknown expectation",
                case("    expect: alow\n"),
                5,
                "unknown value `alow` (did you mean `allow`?)",
            ),
            ("missing expectation", case(""), 4, "missing key `expect`"),
            (
                "no cases",
                "cases: []\n".to_owned(),
                1,
                "the case file has no cases",
            ),
            (
                "duplicate name",
                format!(
                    "{}  - {{name: a, pool: p_1, attributes: {{x: y}}, expect: deny}}\n",
                    case("    expect: allow\n")
                ),
                6,
                "duplicate case name \"a\"",
            ),
            (
                "empty attributes",
                "cases:\n  - {name: a, pool: p_1, attributes: {}, expect: deny}\n".to_owned(),
                2,
                "at least one attribute",
            ),
            (
                "allow with denied",
                case("    expect: allow\n    denied: [x]\n"),
                6,
                "expect: allow cannot list denied attributes",
            ),
            (
                "deny with empty denied",
                case("    expect: deny\n    denied: []\n"),
                6,
                "expect: deny needs at least one denied attribute",
            ),
            (
                "denied not requested",
                case("    expect: deny\n    denied: [z]\n"),
                6,
                "denied lists \"z\", which is not among its attributes",
            ),
        ];
        for (name, source, line, message) in table {
            // Act
            let error = parse_cases(&source).expect_err(name);

            // Assert
            let first = &error.diagnostics[0];
            assert_eq!(first.line, Some(line), "{name}: {error}");
            assert!(first.message.contains(message), "{name}: {error}");
        }
    }
}
