//! Value constraints a role puts on the attributes it may update (`one_of`, full-match `pattern`, `max_length`). Must not depend on actix, aws, tokio or the filesystem.

use regex::Regex;

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
}

impl Rule {
    /// `None` if the value passes; otherwise what the value must be, in words that
    /// never quote it.
    fn broken_by(&self, value: &str) -> Option<String> {
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
        }
    }

    fn show(&self, view: &mut ConstraintView) {
        match self {
            Self::OneOf(allowed) => view.one_of = Some(allowed.clone()),
            Self::Pattern(pattern) => view.pattern = Some(pattern.source.clone()),
            Self::MaxLength(limit) => view.max_length = Some(*limit),
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
}

impl Constraint {
    pub(super) fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// `Err` says, in words, every rule the value breaks. It never quotes the value:
    /// reasons are written to the audit log, where values appear only as HMACs.
    pub(super) fn check(&self, value: &str) -> Result<(), String> {
        let broken: Vec<String> = self
            .rules
            .iter()
            .filter_map(|rule| rule.broken_by(value))
            .collect();
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken.join(" and "))
        }
    }

    pub(super) fn view(&self) -> ConstraintView {
        let mut view = ConstraintView {
            one_of: None,
            pattern: None,
            max_length: None,
        };
        for rule in &self.rules {
            rule.show(&mut view);
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::{Constraint, Pattern, Rule};

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
            let outcome = constraint.check(value);

            // Assert
            assert_eq!(outcome, expected.map_err(str::to_owned), "{name}");
        }
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
