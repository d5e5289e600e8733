//! Globs over attribute names and pool ids: `*` is the only wildcard, matching is exact and case-sensitive. Must not depend on actix, aws, tokio or the filesystem.

use std::fmt;

/// Characters that other glob dialects treat as syntax. attrgate rejects them
/// instead of matching them literally, so `custom:?` cannot silently grant nothing.
const UNSUPPORTED_SYNTAX: &[char] = &['?', '[', ']', '{', '}', '!', '\\'];

/// A validated glob. Only `*` is special; it matches any run of characters, including none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Glob {
    source: String,
}

impl Glob {
    /// Validates `source`; the error is a sentence saying what is wrong with it.
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("a glob may not be empty".to_owned());
        }
        if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "glob {source:?} contains whitespace or a control character"
            ));
        }
        if source.contains("**") {
            return Err(format!(
                "glob {source:?} contains \"**\"; a single * already matches any run of characters"
            ));
        }
        if let Some(c) = source.chars().find(|c| UNSUPPORTED_SYNTAX.contains(c)) {
            return Err(format!(
                "glob {source:?} contains {c:?}; only * is a wildcard"
            ));
        }
        Ok(Self {
            source: source.to_owned(),
        })
    }

    /// The glob that matches everything: the default for a role's `pools`.
    pub(super) fn any() -> Self {
        Self {
            source: "*".to_owned(),
        }
    }

    /// Whether the glob has no wildcard, i.e. names exactly one text.
    pub(super) fn is_literal(&self) -> bool {
        !self.source.contains('*')
    }

    pub(super) fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches the whole glob (exact, case-sensitive).
    pub(super) fn matches(&self, text: &str) -> bool {
        // Leftmost matching of each literal segment is optimal when `*` is the only
        // wildcard, so no backtracking is needed.
        let mut segments = self.source.split('*');
        let first = segments.next().unwrap_or_default();
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let tail: Vec<&str> = segments.collect();
        let Some((last, middle)) = tail.split_last() else {
            return rest.is_empty();
        };
        for segment in middle {
            match rest.find(segment) {
                Some(at) => rest = &rest[at + segment.len()..],
                None => return false,
            }
        }
        rest.ends_with(last)
    }

    /// Whether every text that `other` matches is also matched by `self`.
    pub(super) fn covers(&self, other: &Glob) -> bool {
        // Replace each `*` of `other` by a character no valid glob contains: only a `*`
        // of `self` can absorb it, and then it can absorb any text in its place.
        // Because `**` is rejected, this test is exact, not a heuristic.
        self.matches(&other.source.replace('*', "\u{0}"))
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn glob(source: &str) -> Glob {
        Glob::parse(source).expect("test glob is valid")
    }

    #[test]
    fn globs_match_exactly_case_sensitively_and_with_star_only() {
        let table: &[(&str, &str, bool)] = &[
            ("email", "email", true),
            ("email", "Email", false),
            ("email", "email_verified", false),
            ("email", "my_email", false),
            ("*", "", true),
            ("*", "anything:at all", true),
            ("custom:*", "custom:plan", true),
            ("custom:*", "custom:", true),
            ("custom:*", "Custom:plan", false),
            ("custom:*", "dev:plan", false),
            ("*_name", "given_name", true),
            ("*_name", "name", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("a*a", "aba", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("a*b*c", "abcb", false),
            ("*ab*ab", "abab", true),
            ("*ab*ab", "aabab", true),
            ("*ab*ab", "ab", false),
            ("us-east-1_*", "us-east-1_AbC123", true),
            ("us-east-1_*", "eu-west-1_AbC123", false),
            ("custom:été*", "custom:été_x", true),
        ];
        for &(pattern, text, expected) in table {
            // Act
            let matched = glob(pattern).matches(text);

            // Assert
            assert_eq!(matched, expected, "glob {pattern:?} on {text:?}");
        }
    }

    #[test]
    fn invalid_globs_are_rejected_with_a_reason() {
        let table: &[(&str, &str)] = &[
            ("", "may not be empty"),
            (" ", "whitespace"),
            ("given name", "whitespace"),
            ("a\tb", "whitespace"),
            ("a\u{7}", "control character"),
            ("custom:**", "\"**\""),
            ("custom:?", "only * is a wildcard"),
            ("custom:[ab]", "only * is a wildcard"),
            ("{a,b}", "only * is a wildcard"),
        ];
        for &(pattern, expected) in table {
            // Act
            let error = Glob::parse(pattern).expect_err(pattern);

            // Assert
            assert!(error.contains(expected), "{pattern:?}: {error}");
        }
    }

    #[test]
    fn coverage_is_exact_set_inclusion() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "custom:plan", true),
            ("*", "*", true),
            ("custom:*", "custom:plan", true),
            ("custom:*", "custom:billing_*", true),
            ("custom:billing_*", "custom:*", false),
            ("custom:plan", "custom:*", false),
            ("custom:plan", "custom:plan", true),
            ("*a", "a*a", true),
            ("a*", "*a", false),
            ("a*b*", "ab*", true),
            ("*_name", "given_*", false),
            ("email*", "email_verified", true),
        ];
        for &(outer, inner, expected) in table {
            // Act
            let covered = glob(outer).covers(&glob(inner));

            // Assert
            assert_eq!(covered, expected, "{outer:?} covers {inner:?}");
        }
    }
}
