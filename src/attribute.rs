//! Cognito's attribute vocabulary, shared by every layer: the standard names, `sub`,
//! the `*_verified` flags, and the `custom:` and `dev:` prefixes.
//! Pure: depends only on `suggest`.

use crate::suggest::closest;

/// Cognito's standard attributes that a caller may name (`sub` is not among them).
pub(crate) const STANDARD_ATTRIBUTES: &[&str] = &[
    "address",
    "birthdate",
    "email",
    "family_name",
    "gender",
    "given_name",
    "locale",
    "middle_name",
    "name",
    "nickname",
    "phone_number",
    "picture",
    "preferred_username",
    "profile",
    "updated_at",
    "website",
    "zoneinfo",
    "email_verified",
    "phone_number_verified",
];

/// The longest attribute name Cognito accepts.
pub(crate) const MAX_NAME_CHARS: usize = 32;

/// Cognito's immutable user id. It is never writable, whatever the policy says.
pub(crate) const IMMUTABLE_ATTRIBUTE: &str = "sub";

/// The prefixes of the attributes a pool defines itself: `custom:x`, and its
/// developer-only form `dev:custom:x`.
pub(crate) const NAME_PREFIXES: [&str; 2] = ["custom:", "dev:"];

/// The prefix Cognito gives the developer-only form of an attribute.
pub(crate) const DEVELOPER_PREFIX: &str = "dev:";

/// The input rule on an attribute name: 1 to 32 characters, no spaces or control
/// characters, a standard name or `custom:`/`dev:` and a name, never `sub`.
///
/// # Errors
/// What is wrong with the name, with a hint for an unknown bare name.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME_CHARS {
        return Err(format!(
            "attribute names are 1 to {MAX_NAME_CHARS} characters"
        ));
    }
    if name == IMMUTABLE_ATTRIBUTE {
        return Err("sub is never writable".to_owned());
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("attribute names must not contain spaces or control characters".to_owned());
    }
    if STANDARD_ATTRIBUTES.contains(&name) {
        return Ok(());
    }
    for prefix in NAME_PREFIXES {
        if let Some(rest) = name.strip_prefix(prefix) {
            return if rest.is_empty() {
                Err(format!("'{prefix}' must be followed by a name"))
            } else {
                Ok(())
            };
        }
    }
    Err(format!("unknown attribute '{name}': {}", suggest(name)))
}

/// A hint for an unknown bare name: a standard attribute it resembles, else `custom:<name>`.
fn suggest(name: &str) -> String {
    match closest(&name.to_lowercase(), STANDARD_ATTRIBUTES.iter().copied()) {
        Some(candidate) => format!("did you mean {candidate}?"),
        None => format!("did you mean custom:{name}?"),
    }
}

/// An attribute whose `<attribute>_verified` flag only a `verify` grant may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verifiable {
    Email,
    PhoneNumber,
}

impl Verifiable {
    pub(crate) const ALL: [Self; 2] = [Self::Email, Self::PhoneNumber];

    /// The name used under `verify`, e.g. `email`.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::PhoneNumber => "phone_number",
        }
    }

    /// The Cognito attribute it unlocks, e.g. `email_verified`.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Self::Email => "email_verified",
            Self::PhoneNumber => "phone_number_verified",
        }
    }

    pub(crate) fn from_attribute(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.attribute() == name)
    }

    pub(crate) fn from_flag(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.flag() == name)
    }
}

/// The other name of a pool's own attribute: `dev:custom:x` for `custom:x`, and back.
/// A `protected` or `deny` glob written for one form covers the other.
pub(crate) fn developer_alias(name: &str) -> Option<String> {
    match name.strip_prefix(DEVELOPER_PREFIX) {
        Some(rest) => rest.starts_with("custom:").then(|| rest.to_owned()),
        None => name
            .starts_with("custom:")
            .then(|| format!("{DEVELOPER_PREFIX}{name}")),
    }
}

/// Whether `name` is a verified flag (`email_verified`, `phone_number_verified`).
pub(crate) fn is_verified_flag(name: &str) -> bool {
    Verifiable::from_flag(name).is_some()
}

/// The attribute of a pool that `name`, which the pool lacks, most likely meant: its
/// developer-only form (`custom:x` for `dev:custom:x`), else a close spelling.
pub(crate) fn pool_hint(name: &str, pool_names: &[&str]) -> Option<String> {
    let developer = format!("{DEVELOPER_PREFIX}{name}");
    if pool_names.contains(&developer.as_str()) {
        return Some(developer);
    }
    closest(name, pool_names.iter().copied()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verified_flag_maps_to_its_attribute_and_back() {
        for verifiable in Verifiable::ALL {
            assert_eq!(Verifiable::from_flag(verifiable.flag()), Some(verifiable));
            assert_eq!(
                Verifiable::from_attribute(verifiable.attribute()),
                Some(verifiable)
            );
        }
        assert!(is_verified_flag("email_verified"));
        assert!(!is_verified_flag("email"));
    }

    #[test]
    fn custom_and_developer_only_forms_are_each_others_alias() {
        assert_eq!(developer_alias("custom:x").as_deref(), Some("dev:custom:x"));
        assert_eq!(developer_alias("dev:custom:x").as_deref(), Some("custom:x"));
        assert_eq!(developer_alias("dev:x"), None);
        assert_eq!(developer_alias("email"), None);
    }

    #[test]
    fn a_pool_hint_prefers_the_developer_only_form_then_a_close_spelling() {
        let names = ["custom:plan", "dev:custom:risk", "email"];

        assert_eq!(
            pool_hint("custom:risk", &names).as_deref(),
            Some("dev:custom:risk")
        );
        assert_eq!(
            pool_hint("custom:plann", &names).as_deref(),
            Some("custom:plan")
        );
        assert_eq!(pool_hint("custom:zzzzzzzz", &names), None);
    }
}
