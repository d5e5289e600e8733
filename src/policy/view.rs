//! Reading attributes under the policy: which of a user's attributes a caller may see
//! (the `view` globs of its applicable roles, minus the policy's `hidden`), and the one
//! function through which attribute values leave attrgate, [`ReadDecision::filter`].
//! Pure; must not depend on actix, aws, tokio or the filesystem.
//!
//! [`Visible`] has private fields and no constructor but `filter`, so an answer that
//! carries attribute values can only be made of what the policy let the caller see:
//!
//! ```compile_fail,E0451
//! let leaked = attrgate::policy::Visible {
//!     attributes: Default::default(),
//!     withheld: 0,
//! }; // error[E0451]: its fields are private
//! ```

use std::collections::BTreeMap;

use super::compile::{Policy, Role, first_match};
use super::decide::{ConditionResult, Denial, Evaluation};
use super::facts::DecisionRequest;

/// What a caller may read of one user: decided once per read, before any value is
/// looked at.
#[derive(Debug)]
pub struct ReadDecision<'p> {
    policy: &'p Policy,
    applicable: Vec<&'p Role>,
    conditions: Vec<ConditionResult>,
    refusal: Option<Denial>,
    lacked_facts: bool,
}

/// The attribute a read's denial names: the whole user.
pub const WHOLE_USER: &str = "*";

/// Decides what the caller in `request` may read in its pool (the request's attributes
/// are not looked at; its target facts are, for roles with `target` conditions).
#[must_use]
pub fn decide_view<'p>(policy: &'p Policy, request: &DecisionRequest<'p>) -> ReadDecision<'p> {
    let evaluation = Evaluation::new(policy, request);
    let refusal = evaluation.no_role().map(|(code, reason)| Denial {
        attribute: WHOLE_USER.to_owned(),
        code: *code,
        reason: reason.clone(),
    });
    ReadDecision {
        policy,
        applicable: evaluation.applicable.clone(),
        conditions: evaluation.conditions().to_vec(),
        refusal,
        lacked_facts: evaluation.lacked_facts(),
    }
}

impl ReadDecision<'_> {
    /// The roles that applied, in policy file order.
    #[must_use]
    pub fn applicable_roles(&self) -> Vec<String> {
        self.applicable
            .iter()
            .map(|role| role.name.clone())
            .collect()
    }

    /// Every target condition evaluated, with whether it held.
    #[must_use]
    pub fn conditions(&self) -> &[ConditionResult] {
        &self.conditions
    }

    /// Whether a role's `target` conditions could not be evaluated for lack of facts.
    #[must_use]
    pub fn lacked_target_facts(&self) -> bool {
        self.lacked_facts
    }

    /// Why nothing may be read (no applicable role), as a denial of the whole user
    /// (attribute [`WHOLE_USER`]) with the same codes as a write's.
    #[must_use]
    pub fn refusal(&self) -> Option<&Denial> {
        self.refusal.as_ref()
    }

    /// Whether the caller may read `attribute`: no `hidden` glob matches it (in either
    /// of its forms, `custom:x` / `dev:custom:x`, as `protected` does), and some
    /// applicable role's `view` glob matches it exactly (as `update` grants do: a grant
    /// of `custom:*` does not reach `dev:custom:*`).
    #[must_use]
    pub fn may_view(&self, attribute: &str) -> bool {
        first_match(&self.policy.hidden, attribute).is_none()
            && self
                .applicable
                .iter()
                .any(|role| role.view.iter().any(|glob| glob.matches(attribute)))
    }

    /// The attributes the caller may read, and how many it may not. The only way to make
    /// a [`Visible`]; nothing is visible when no role applies.
    #[must_use]
    pub fn filter(&self, attributes: &BTreeMap<String, String>) -> Visible {
        let shown: BTreeMap<String, String> = if self.refusal.is_some() {
            BTreeMap::new()
        } else {
            attributes
                .iter()
                .filter(|(name, _)| self.may_view(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect()
        };
        Visible {
            withheld: attributes.len() - shown.len(),
            attributes: shown,
        }
    }
}

/// A user's attributes as one caller may see them: made only by [`ReadDecision::filter`].
#[derive(PartialEq, Eq)]
pub struct Visible {
    attributes: BTreeMap<String, String>,
    withheld: usize,
}

impl Visible {
    /// Attribute name to value, of the attributes the caller may read.
    #[must_use]
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// How many of the user's attributes were left out.
    #[must_use]
    pub fn withheld(&self) -> usize {
        self.withheld
    }

    /// The names shown, sorted (what a read's audit record names).
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.attributes.keys().cloned().collect()
    }
}

/// Names only: values never reach logs.
impl std::fmt::Debug for Visible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visible")
            .field("names", &self.attributes.keys().collect::<Vec<_>>())
            .field("withheld", &self.withheld)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{WHOLE_USER, decide_view};
    use crate::policy::compile::Policy;
    use crate::policy::decide::DenialCode;
    use crate::policy::facts::{Claims, DecisionRequest, TargetFacts};

    const POLICY: &str = r#"
version: 1
hidden: ["custom:ssn", "dev:*"]
roles:
  support:
    update: [given_name]
    view: [given_name, family_name, email, "custom:*"]
  billing:
    pools: ["eu-west-1_*"]
    view: ["custom:plan"]
  writer-only:
    update: ["*"]
  tenant-admin:
    view: ["*"]
    target:
      attributes:
        "custom:tenant_id": {equals_claim: tenant}
"#;

    fn user() -> BTreeMap<String, String> {
        [
            ("given_name", "Ann"),
            ("family_name", "Lee"),
            ("email", "ann@example.com"),
            ("phone_number", "+15551234567"),
            ("custom:plan", "pro"),
            ("custom:ssn", "123-45-6789"),
            ("custom:tenant_id", "t1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn a_read_shows_only_what_a_view_grant_names_and_counts_the_rest() {
        let policy = Policy::parse(POLICY).unwrap();
        let roles = roles(&["support"]);
        let request = DecisionRequest::about(&roles, "us-east-1_abc");

        let visible = decide_view(&policy, &request).filter(&user());

        assert_eq!(
            visible.names(),
            [
                "custom:plan",
                "custom:tenant_id",
                "email",
                "family_name",
                "given_name"
            ]
        );
        assert_eq!(
            visible.withheld(),
            2,
            "phone_number (no grant), custom:ssn (hidden)"
        );
        assert_eq!(visible.attributes()["given_name"], "Ann");
    }

    #[test]
    fn hidden_wins_over_every_view_grant_in_either_form_of_a_custom_name() {
        let policy = Policy::parse(POLICY).unwrap();
        let roles = roles(&["support"]);
        let decision = decide_view(&policy, &DecisionRequest::about(&roles, "us-east-1_abc"));

        assert!(!decision.may_view("custom:ssn"));
        assert!(!decision.may_view("dev:custom:ssn"));
        assert!(!decision.may_view("dev:anything"));
        assert!(decision.may_view("custom:plan"));
    }

    #[test]
    fn a_view_grant_matches_exactly_and_never_reaches_the_developer_form() {
        let policy = Policy::parse(
            "version: 1\nroles:\n  r:\n    view: [\"custom:*\", \"dev:custom:open\"]\n",
        )
        .unwrap();
        let roles = roles(&["r"]);
        let decision = decide_view(&policy, &DecisionRequest::about(&roles, "us-east-1_abc"));

        assert!(decision.may_view("custom:plan"));
        assert!(!decision.may_view("dev:custom:plan"));
        assert!(decision.may_view("dev:custom:open"));
    }

    #[test]
    fn update_and_verify_grants_do_not_imply_view() {
        let policy = Policy::parse(POLICY).unwrap();
        let roles = roles(&["writer-only"]);
        let decision = decide_view(&policy, &DecisionRequest::about(&roles, "us-east-1_abc"));

        let visible = decision.filter(&user());

        assert!(decision.refusal().is_none(), "the role applies");
        assert!(visible.attributes().is_empty());
        assert_eq!(visible.withheld(), user().len());
    }

    #[test]
    fn a_caller_without_an_applicable_role_is_refused_and_sees_nothing() {
        let policy = Policy::parse(POLICY).unwrap();
        let roles = roles(&["billing", "unknown"]);
        let decision = decide_view(&policy, &DecisionRequest::about(&roles, "us-east-1_abc"));

        let refusal = decision
            .refusal()
            .expect("billing applies only in eu-west-1");

        assert_eq!(refusal.code, DenialCode::NoApplicableRole);
        assert_eq!(refusal.attribute, WHOLE_USER);
        assert!(decision.filter(&user()).attributes().is_empty());
    }

    #[test]
    fn target_conditions_limit_reads_as_they_limit_writes() {
        let policy = Policy::parse(POLICY).unwrap();
        let roles = roles(&["tenant-admin"]);
        let facts = TargetFacts {
            attributes: user(),
            groups: None,
        };
        let claims_of =
            |tenant: &str| -> Claims { [("tenant".to_owned(), vec![tenant.to_owned()])].into() };
        let (own, other, none) = (claims_of("t1"), claims_of("t2"), Claims::new());
        let read = |claims| {
            let request =
                DecisionRequest::about(&roles, "us-east-1_abc").with_facts(claims, Some(&facts));
            let decision = decide_view(&policy, &request);
            (
                decision.refusal().map(|denial| denial.code),
                decision.filter(&facts.attributes).names().len(),
            )
        };

        assert_eq!(
            read(&own),
            (None, 6),
            "everything but the hidden custom:ssn"
        );
        assert_eq!(read(&other), (Some(DenialCode::TargetCondition), 0));
        assert_eq!(read(&none), (Some(DenialCode::MissingClaim), 0));
    }

    #[test]
    fn the_debug_form_of_what_is_visible_names_attributes_but_never_values() {
        let policy = Policy::parse(POLICY).unwrap();
        let roles = roles(&["support"]);
        let visible =
            decide_view(&policy, &DecisionRequest::about(&roles, "us-east-1_abc")).filter(&user());

        let logged = format!("{visible:?}");

        assert!(logged.contains("given_name"));
        assert!(!logged.contains("Ann"), "{logged}");
    }
}
