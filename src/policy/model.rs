//! The policy file's YAML schema as written by operators, before validation. Must not depend on actix, aws, tokio or the filesystem.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A YAML mapping kept in source order, with each key's location. (Duplicate keys never
/// get this far: serde-saphyr rejects them while parsing.)
#[derive(Debug)]
pub(super) struct Entries<K, V>(pub(super) Vec<(K, V)>);

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Entries<K, V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> serde::de::Visitor<'de>
            for EntriesVisitor<K, V>
        {
            type Value = Entries<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

/// The whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    /// Signed, so that `version: -1` gets attrgate's message rather than a type error.
    pub(super) version: Spanned<i64>,
    #[serde(default)]
    pub(super) protected: Vec<Spanned<String>>,
    /// Globs of attributes no role may read.
    #[serde(default)]
    pub(super) hidden: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) roles: Entries<Spanned<String>, RawRole>,
}

/// One role, keyed by the name that appears in tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    /// `None` (absent) means every pool; `Some([])` means none.
    #[serde(default)]
    pub(super) pools: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) update: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) verify: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) deny: Vec<Spanned<String>>,
    /// Globs of attributes the role may read (`GET …/attributes`); not implied by
    /// `update` or `verify`.
    #[serde(default)]
    pub(super) view: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) constraints: Entries<Spanned<String>, RawConstraint>,
    /// Conditions on the target user; the role applies only where all of them hold.
    #[serde(default)]
    pub(super) target: Option<Spanned<RawTarget>>,
}

/// `target:` of a role: conditions on the user being changed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    #[serde(default)]
    pub(super) attributes: Entries<Spanned<String>, RawAttributeCondition>,
    #[serde(default)]
    pub(super) groups: Option<RawGroups>,
}

/// A condition on one of the target user's attributes: exactly one of these.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttributeCondition {
    #[serde(default)]
    pub(super) equals_claim: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) one_of: Option<Spanned<Vec<String>>>,
}

/// Conditions on the target user's Cognito groups.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroups {
    #[serde(default)]
    pub(super) any_of: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) none_of: Option<Spanned<Vec<String>>>,
}

/// Rules on the values a role may set for one attribute.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConstraint {
    #[serde(default)]
    pub(super) one_of: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) pattern: Option<Spanned<String>>,
    /// Signed, so that `max_length: -1` gets attrgate's message rather than a type error.
    #[serde(default)]
    pub(super) max_length: Option<Spanned<i64>>,
    /// The new value must equal the caller's claim of this name.
    #[serde(default)]
    pub(super) equals_claim: Option<Spanned<String>>,
}
