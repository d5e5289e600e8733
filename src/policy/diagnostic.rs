//! Diagnostics for policy and case files: errors and warnings that name a line and column, and "did you mean" hints. Must not depend on actix, aws, tokio or the filesystem.

use std::fmt;

use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};

use crate::suggest::closest;

/// One error or warning about a policy or case file, located where possible.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyDiagnostic {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    pub message: String,
}

impl PolicyDiagnostic {
    /// A diagnostic without a location.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            line: None,
            column: None,
            message: sanitize(&message.into()),
        }
    }

    pub(super) fn at_location(location: Location, message: impl Into<String>) -> Self {
        let mut diagnostic = Self::new(message);
        // serde-saphyr reports line 0 for "unknown" (e.g. under `#[serde(flatten)]`).
        if location.line() > 0 {
            diagnostic.line = usize::try_from(location.line()).ok();
            diagnostic.column = usize::try_from(location.column()).ok();
        }
        diagnostic
    }

    /// The 1-based line of the YAML node `node` came from, when known.
    pub(super) fn line_of<T>(node: &Spanned<T>) -> Option<usize> {
        Self::at(node, "").line
    }

    /// A diagnostic located at the YAML node `node` came from (the use site, for aliases).
    pub(super) fn at<T>(node: &Spanned<T>, message: impl Into<String>) -> Self {
        Self::at_location(node.referenced, message)
    }
}

impl PolicyDiagnostic {
    /// `file:line:column: severity: message`, the form editors and CI logs link to
    /// (`file: severity: message` when the location is unknown).
    #[must_use]
    pub fn in_file(&self, file: &str, severity: &str) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                format!("{file}:{line}:{column}: {severity}: {}", self.message)
            }
            (Some(line), None) => format!("{file}:{line}: {severity}: {}", self.message),
            _ => format!("{file}: {severity}: {}", self.message),
        }
    }
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        f.write_str(&self.message)
    }
}

/// A policy or case file that was rejected, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", one_per_line(.diagnostics))]
pub struct PolicyError {
    pub diagnostics: Vec<PolicyDiagnostic>,
}

impl PolicyError {
    pub(super) fn single(diagnostic: PolicyDiagnostic) -> Self {
        Self {
            diagnostics: vec![diagnostic],
        }
    }

    /// Maps a serde-saphyr error (syntax, type, unknown key, duplicate key, ...) to a
    /// located diagnostic with attrgate's own wording for the common mistakes.
    pub(super) fn from_yaml(error: &serde_saphyr::Error) -> Self {
        let location = error.location().unwrap_or(Location::UNKNOWN);
        let message = match innermost(error) {
            serde_saphyr::Error::SerdeUnknownField {
                field, expected, ..
            } => unknown_word("key", field, expected),
            serde_saphyr::Error::SerdeUnknownVariant {
                variant, expected, ..
            } => unknown_word("value", variant, expected),
            serde_saphyr::Error::SerdeMissingField { field, .. } => {
                format!("missing key `{field}`")
            }
            serde_saphyr::Error::DuplicateMappingKey { key: Some(key), .. } => {
                format!("duplicate key `{key}`: a key may appear only once in a mapping")
            }
            serde_saphyr::Error::DuplicateMappingKey { key: None, .. } => {
                "duplicate key: a key may appear only once in a mapping".to_owned()
            }
            other => UserMessageFormatter.format_message(other).into_owned(),
        };
        Self::single(PolicyDiagnostic::at_location(location, message))
    }
}

fn one_per_line(diagnostics: &[PolicyDiagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The error itself, without the snippet and alias wrappers serde-saphyr adds around it.
fn innermost(error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match error {
        serde_saphyr::Error::WithSnippet { error, .. }
        | serde_saphyr::Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

fn unknown_word(kind: &str, word: &str, expected: &[&str]) -> String {
    let hint = closest(word, expected.iter().copied())
        .map(|candidate| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default();
    if expected.is_empty() {
        format!("unknown {kind} `{word}`{hint}")
    } else {
        format!(
            "unknown {kind} `{word}`{hint}; expected one of: {}",
            expected.join(", ")
        )
    }
}

/// Policy text is operator input that ends up in terminals and logs: escape control characters.
fn sanitize(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{PolicyDiagnostic, PolicyError};

    #[test]
    fn a_diagnostic_displays_its_line_and_column_first() {
        // Arrange
        let located = PolicyDiagnostic {
            line: Some(4),
            column: Some(5),
            message: "boom".to_owned(),
        };
        let unlocated = PolicyDiagnostic::new("boom");

        // Act / Assert
        assert_eq!(located.to_string(), "line 4, column 5: boom");
        assert_eq!(unlocated.to_string(), "boom");
    }

    #[test]
    fn a_diagnostic_in_a_file_reads_file_line_column_severity_message() {
        // Arrange
        let located = PolicyDiagnostic {
            line: Some(4),
            column: Some(5),
            message: "boom".to_owned(),
        };
        let line_only = PolicyDiagnostic {
            column: None,
            ..located.clone()
        };

        // Act / Assert
        assert_eq!(
            located.in_file("p.yaml", "error"),
            "p.yaml:4:5: error: boom"
        );
        assert_eq!(
            line_only.in_file("p.yaml", "warning"),
            "p.yaml:4: warning: boom"
        );
        assert_eq!(
            PolicyDiagnostic::new("boom").in_file("p.yaml", "error"),
            "p.yaml: error: boom"
        );
    }

    #[test]
    fn a_policy_error_displays_one_diagnostic_per_line() {
        // Arrange
        let error = PolicyError {
            diagnostics: vec![
                PolicyDiagnostic::new("first"),
                PolicyDiagnostic::new("second"),
            ],
        };

        // Act / Assert
        assert_eq!(error.to_string(), "first\nsecond");
    }

    #[test]
    fn control_characters_in_messages_are_escaped() {
        assert_eq!(
            PolicyDiagnostic::new("bad\u{7}key\n").message,
            "bad\\u{7}key\\n"
        );
    }
}
