//! A user pool's attribute schema (from DescribeUserPool) and the check of a request's
//! attribute names against it: a name the pool does not have, or an immutable one, is an
//! input error (422) before the policy and before Cognito. Pure: no actix, aws, tokio
//! or filesystem; depends only on `input`, `attribute` and `wire`.

use crate::attribute::{STANDARD_ATTRIBUTES, pool_hint};
use crate::input::AttributeChanges;
use crate::report::FieldError;

/// One attribute as the pool's schema lists it (custom ones as `custom:<name>`,
/// developer-only ones as `dev:custom:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaAttribute {
    pub name: String,
    /// `false`: the value cannot change once the user exists (`Mutable: false`).
    pub mutable: bool,
}

/// The attributes a pool has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PoolSchema {
    pub attributes: Vec<SchemaAttribute>,
}

impl PoolSchema {
    pub(crate) fn new(attributes: Vec<SchemaAttribute>) -> Self {
        Self { attributes }
    }

    /// Whether the pool has `name`, and if so whether it may change: `None` when the pool
    /// lacks it. Cognito's standard attributes exist in every pool; one the schema does
    /// not list is taken as present and mutable (moto omits them from pools created with
    /// custom attributes; Cognito itself always lists them).
    #[must_use]
    pub(crate) fn mutability(&self, name: &str) -> Option<bool> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name == name)
            .map(|attribute| attribute.mutable)
            .or_else(|| STANDARD_ATTRIBUTES.contains(&name).then_some(true))
    }

    /// Every attribute of the pool: the listed ones, then the standard ones it omits.
    #[must_use]
    pub(crate) fn effective_attributes(&self) -> Vec<SchemaAttribute> {
        let mut all = self.attributes.clone();
        for standard in STANDARD_ATTRIBUTES {
            if !all.iter().any(|attribute| attribute.name == *standard) {
                all.push(SchemaAttribute {
                    name: (*standard).to_owned(),
                    mutable: true,
                });
            }
        }
        all
    }

    /// Checks every requested name; values are never looked at, nor quoted.
    ///
    /// # Errors
    /// One `attributes.<name>` error per name the pool lacks or cannot change.
    pub(crate) fn check(
        &self,
        pool_id: &str,
        changes: &AttributeChanges,
    ) -> Result<(), Vec<FieldError>> {
        let errors: Vec<FieldError> = changes
            .as_map()
            .keys()
            .filter_map(|name| {
                let message = match self.mutability(name) {
                    Some(true) => return None,
                    Some(false) => format!(
                        "{name} is immutable in pool {pool_id}: Cognito does not allow it to change once the user exists"
                    ),
                    None => format!(
                        "pool {pool_id} has no attribute {name}{}",
                        self.hint(name)
                            .map(|hint| format!(" (did you mean {hint}?)"))
                            .unwrap_or_default()
                    ),
                };
                Some(FieldError::new(format!("attributes.{name}"), message))
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The pool's attribute that `name` most likely meant.
    fn hint(&self, name: &str) -> Option<String> {
        let names: Vec<&str> = self.attributes.iter().map(|a| a.name.as_str()).collect();
        pool_hint(name, &names)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn schema() -> PoolSchema {
        let attribute = |name: &str, mutable| SchemaAttribute {
            name: name.to_owned(),
            mutable,
        };
        PoolSchema::new(vec![
            attribute("email", true),
            attribute("birthdate", false),
            attribute("custom:plan", true),
            attribute("custom:tenant_id", false),
            attribute("dev:custom:risk", true),
        ])
    }

    fn changes(names: &[&str]) -> AttributeChanges {
        let map: BTreeMap<String, String> = names
            .iter()
            .map(|name| {
                let value = match *name {
                    "email" => "secret@example.com",
                    "email_verified" => "true",
                    _ => "secret-value",
                };
                ((*name).to_owned(), value.to_owned())
            })
            .collect();
        AttributeChanges::parse(map).expect("valid input")
    }

    #[test]
    fn listed_mutable_attributes_and_unlisted_standard_ones_pass() {
        // Act
        let result = schema().check(
            "us-east-1_a",
            &changes(&["email", "given_name", "email_verified", "custom:plan"]),
        );

        // Assert
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn unknown_and_immutable_attributes_each_get_a_field_error_without_the_value() {
        // Act
        let errors = schema()
            .check(
                "us-east-1_a",
                &changes(&["custom:tier", "custom:tenant_id", "birthdate", "given_name"]),
            )
            .unwrap_err();

        // Assert
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "attributes.birthdate",
                "attributes.custom:tenant_id",
                "attributes.custom:tier"
            ]
        );
        assert_eq!(
            errors[2].message,
            "pool us-east-1_a has no attribute custom:tier"
        );
        assert!(
            errors[1]
                .message
                .starts_with("custom:tenant_id is immutable in pool us-east-1_a"),
            "{}",
            errors[1].message
        );
        assert!(errors.iter().all(|e| !e.message.contains("secret-value")));
    }

    #[test]
    fn a_near_miss_or_the_developer_only_form_is_suggested() {
        // Act
        let errors = schema()
            .check("p_1", &changes(&["custom:plann", "custom:risk"]))
            .unwrap_err();

        // Assert
        assert_eq!(
            errors[0].message,
            "pool p_1 has no attribute custom:plann (did you mean custom:plan?)"
        );
        assert_eq!(
            errors[1].message,
            "pool p_1 has no attribute custom:risk (did you mean dev:custom:risk?)"
        );
    }

    #[test]
    fn the_effective_attributes_add_the_standard_ones_the_schema_omits() {
        // Act
        let all = schema().effective_attributes();

        // Assert
        assert_eq!(all.len(), 5 + STANDARD_ATTRIBUTES.len() - 2);
        assert!(all.iter().any(|a| a.name == "birthdate" && !a.mutable));
        assert!(
            all.iter()
                .any(|a| a.name == "phone_number_verified" && a.mutable)
        );
    }
}
