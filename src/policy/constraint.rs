//! Value constraints a role puts on the attributes it may update (`one_of`, full-match `pattern`, `max_length`). Must not depend on actix, aws, tokio or the filesystem.

use regex::Regex;

use super::facts::Claims;

/// A compiled constraint: a list of rules, every one of which must accept the value.
#[derive(Debug, Clone)]
pub(super) struct Constraint {
    rules: Vec<Rule>,
}

/// One rule on a value. A new kind of rule is one more variant here, with its check
/// and its view.
#[derive(Debug, Clone)]
pub(super) enum Rule {
    /// The value must be one of these, exactly.
    OneOf(Vec<String>),
    /// The value must match this regex as a whole.
    Pattern(Pattern),
    /// The value must have at most this many characters.
    MaxLength(usize),
    /// The value must equal the caller's claim of this name (any of its values).
    EqualsClaim(String),
}

/// Why a constraint rejected a value, in words that never quote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rejection {
    pub(super) text: String,
    /// Every broken rule broke for want of a claim the caller's token lacks.
    pub(super) missing_claim: bool,
}

impl Rejection {
    /// The same kind of rejection, told in other words.
    pub(super) fn clone_with(&self, text: String) -> Self {
        Self {
            text,
            missing_claim: self.missing_claim,
        }
    }
}

impl Rule {
    /// `None` if the value passes; otherwise what the value must be, in words that
    /// never quote it.
    fn broken_by(&self, value: &str, claims: &Claims) -> Option<(String, bool)> {
        if let Self::EqualsClaim(claim) = self {
            return match claims.get(claim).filter(|values| !values.is_empty()) {
                None => Some((
                    format!("needs the token's claim {claim}, which it lacks"),
                    true,
                )),
                Some(values) => (!values.iter().any(|allowed| allowed == value))
                    .then(|| (format!("must equal the token's claim {claim}"), false)),
            };
        }
        self.broken_by_value(value).map(|text| (text, false))
    }

    fn broken_by_value(&self, value: &str) -> Option<String> {
        match self {
            Self::OneOf(allowed) => (!allowed.iter().any(|candidate| candidate == value))
                .then(|| format!("must be one of [{}]", allowed.join(", "))),
            Self::Pattern(pattern) => (!pattern.anchored.is_match(value))
                .then(|| format!("must fully match the pattern {:?}", pattern.source)),
            Self::MaxLength(limit) => (value.chars().count() > *limit).then(|| {
                let unit = if *limit == 1 {
                    "character"
                } else {
                    "characters"
                };
                format!("must be at most {limit} {unit} long")
            }),
            Self::EqualsClaim(_) => None,
        }
    }

    fn show(&self, view: &mut ConstraintView) {
        match self {
            Self::OneOf(allowed) => view.one_of = Some(allowed.clone()),
            Self::Pattern(pattern) => view.pattern = Some(pattern.source.clone()),
            Self::MaxLength(limit) => view.max_length = Some(*limit),
            Self::EqualsClaim(claim) => view.equals_claim = Some(claim.clone()),
        }
    }
}

/// A regex that must match the whole value.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    source: String,
    anchored: Regex,
}

impl Pattern {
    /// Compiles `source` so that it must match the whole value, not a substring.
    pub(super) fn compile(source: &str) -> Result<Self, String> {
        // Compile the pattern on its own first: its errors then describe what the operator
        // wrote, and a pattern such as `a)|(b` cannot escape the anchoring group below.
        Regex::new(source).map_err(|error| regex_problem(&error))?;
        let anchored =
            Regex::new(&format!("^(?:{source})$")).map_err(|error| regex_problem(&error))?;
        Ok(Self {
            source: source.to_owned(),
            anchored,
        })
    }
}

/// The one line of the regex crate's multi-line report that says what is wrong.
fn regex_problem(error: &regex::Error) -> String {
    let report = error.to_string();
    report
        .lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map_or_else(
            || report.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

/// What a constraint allows, as shown by `GET /permissions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ConstraintView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The value must equal the caller's claim of this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals_claim: Option<String>,
}

impl Constraint {
    pub(super) fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// `Err` says, in words, every rule the value breaks. It never quotes the value:
    /// reasons are written to the audit log, where values appear only as HMACs.
    pub(super) fn check(&self, value: &str, claims: &Claims) -> Result<(), Rejection> {
        let broken: Vec<(String, bool)> = self
            .rules
            .iter()
            .filter_map(|rule| rule.broken_by(value, claims))
            .collect();
        if broken.is_empty() {
            return Ok(());
        }
        Err(Rejection {
            missing_claim: broken.iter().all(|(_, missing)| *missing),
            text: broken
                .into_iter()
                .map(|(text, _)| text)
                .collect::<Vec<_>>()
                .join(" and "),
        })
    }

    pub(super) fn view(&self) -> ConstraintView {
        let mut view = ConstraintView {
            one_of: None,
            pattern: None,
            max_length: None,
            equals_claim: None,
        };
        for rule in &self.rules {
            rule.show(&mut view);
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::{Claims, Constraint, Pattern, Rule};

    fn constraint(
        one_of: Option<&[&str]>,
        pattern: Option<&str>,
        max_length: Option<usize>,
    ) -> Constraint {
        let one_of =
            one_of.map(|values| Rule::OneOf(values.iter().map(|v| (*v).to_owned()).collect()));
        let pattern =
            pattern.map(|p| Rule::Pattern(Pattern::compile(p).expect("test pattern compiles")));
        let max_length = max_length.map(Rule::MaxLength);
        Constraint::new(
            [one_of, pattern, max_length]
                .into_iter()
                .flatten()
                .collect(),
        )
    }

    #[test]
    fn each_rule_accepts_and_rejects_values_as_documented() {
        let table: &[(&str, Constraint, &str, Result<(), &str>)] = &[
            (
                "one_of accepts a listed value",
                constraint(Some(&["free", "pro"]), None, None),
                "pro",
                Ok(()),
            ),
            (
                "one_of is exact and case-sensitive",
                constraint(Some(&["free", "pro"]), None, None),
                "Pro",
                Err("must be one of [free, pro]"),
            ),
            (
                "one_of applies to the empty value (a delete)",
                constraint(Some(&["free", "pro"]), None, None),
                "",
                Err("must be one of [free, pro]"),
            ),
            (
                "one_of can allow deletes explicitly",
                constraint(Some(&["", "free"]), None, None),
                "",
                Ok(()),
            ),
            (
                "pattern accepts a full match",
                constraint(None, Some("[a-z]{2}"), None),
                "en",
                Ok(()),
            ),
            (
                "pattern rejects a mere substring match",
                constraint(None, Some("[a-z]{2}"), None),
                "xen-US",
                Err("must fully match the pattern \"[a-z]{2}\""),
            ),
            (
                "pattern alternatives are anchored as a whole",
                constraint(None, Some("a|b"), None),
                "ab",
                Err("must fully match the pattern \"a|b\""),
            ),
            (
                "pattern applies to the empty value",
                constraint(None, Some("[a-z]+"), None),
                "",
                Err("must fully match the pattern \"[a-z]+\""),
            ),
            (
                "max_length counts characters, not bytes",
                constraint(None, None, Some(3)),
                "été",
                Ok(()),
            ),
            (
                "max_length rejects a longer value",
                constraint(None, None, Some(3)),
                "abcd",
                Err("must be at most 3 characters long"),
            ),
            (
                "max_length accepts the empty value",
                constraint(None, None, Some(3)),
                "",
                Ok(()),
            ),
            (
                "every broken rule is reported",
                constraint(Some(&["a"]), Some("[0-9]+"), Some(1)),
                "xyz",
                Err(
                    "must be one of [a] and must fully match the pattern \"[0-9]+\" and must be at most 1 character long",
                ),
            ),
        ];
        for (name, constraint, value, expected) in table {
            // Act
            let outcome = constraint
                .check(value, &Claims::new())
                .map_err(|rejection| rejection.text);

            // Assert
            assert_eq!(outcome, expected.map_err(str::to_owned), "{name}");
        }
    }

    #[test]
    fn equals_claim_accepts_only_the_callers_claim_and_says_when_the_claim_is_missing() {
        // Arrange
        let constraint = Constraint::new(vec![Rule::EqualsClaim("tenant".into())]);
        let claims = Claims::from([("tenant".to_owned(), vec!["a".to_owned()])]);

        // Act / Assert
        assert_eq!(constraint.check("a", &claims), Ok(()));
        let other = constraint.check("b", &claims).unwrap_err();
        assert_eq!(other.text, "must equal the token's claim tenant");
        assert!(!other.missing_claim);
        let missing = constraint.check("a", &Claims::new()).unwrap_err();
        assert!(missing.missing_claim);
    }

    #[test]
    fn a_pattern_cannot_escape_its_anchors() {
        // Act
        let error = Pattern::compile("a)|(b").expect_err("unbalanced");

        // Assert
        assert_eq!(error, "unopened group");
    }

    #[test]
    fn an_invalid_pattern_is_explained_in_one_line() {
        // Act
        let error = Pattern::compile("[a-").expect_err("unclosed class");

        // Assert
        assert_eq!(error, "unclosed character class");
    }
}
