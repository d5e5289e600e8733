//! The input rules of SPEC.md, checked once at the edge into domain types.
//! Pure: no actix, aws, tokio or filesystem. Runs before the policy and before Cognito.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use validator::ValidateEmail;

pub(crate) use crate::attribute::MAX_NAME_CHARS;
use crate::attribute::check_name;
use crate::report::FieldError;

pub(crate) const MAX_ATTRIBUTES: usize = 50;
pub(crate) const MAX_VALUE_CHARS: usize = 2048;
pub(crate) const MAX_POOL_ID_CHARS: usize = 55;
pub(crate) const MAX_USERNAME_CHARS: usize = 128;

static POOL_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9-]+_[0-9a-zA-Z]+$").expect("static regex"));
/// The shape of an AWS region name: a geography (or a partition such as `us-gov`), a
/// direction, a number: `us-east-1`, `us-gov-west-1`, `ap-southeast-2`, `il-central-1`.
static REGION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov|us-iso|us-isob|us-isof|eu-isoe)-(north|south|east|west|central|northeast|southeast|northwest|southwest)-[0-9]{1,2}$",
    )
    .expect("static regex")
});
static E164: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\+[0-9]{1,15}$").expect("static regex"));

/// A query string into `Q`; the error never quotes what was sent. `takes` names the
/// operation's parameters, for the message.
pub(crate) fn parse_query<Q: serde::de::DeserializeOwned>(
    query: &str,
    takes: &str,
) -> Result<Q, String> {
    serde_urlencoded::from_str(query).map_err(|error| {
        // serde's messages quote what was sent (an unknown name may be a token): only
        // the names of the operation's own parameters are ever repeated.
        let text = error.to_string();
        let what = if text.starts_with("unknown field") {
            format!("unknown parameter; this operation takes {takes}")
        } else if text.starts_with("missing field") {
            text
        } else {
            format!("a parameter has an invalid value; this operation takes {takes}")
        };
        format!("Query deserialize error: {what}")
    })
}

/// A user pool id such as `us-east-1_AbC123` (or `local_AbC123` with a fixed region).
/// Only its shape is checked here: whether the part before `_` must be a region depends
/// on the config, so `Regions::check` decides that. Outside this module a `PoolId` comes
/// only from [`Regions::pool`], which does both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolId(String);

impl PoolId {
    fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > MAX_POOL_ID_CHARS || !POOL_ID.is_match(raw) {
            return Err(FieldError::new(
                "pool_id",
                "must look like <region>_<id> (ASCII letters, digits, '-' and one '_'), at most 55 characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The part of the id before the last `_`: the region, unless the config fixes one.
    pub(crate) fn region(&self) -> &str {
        self.0.rsplit_once('_').map_or("", |(region, _)| region)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which regions requests may name: the config's fixed region, and its allow-list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Regions {
    /// `cognito.region`: every pool is in this region, whatever its id says.
    pub(crate) fixed: Option<String>,
    /// `cognito.allowed_regions`: when set, the (effective) region must be listed.
    pub(crate) allowed: Option<Vec<String>>,
}

impl Regions {
    /// A pool id that passes every input rule under this config: its shape, then its
    /// region (`check`).
    ///
    /// # Errors
    /// The first rule it breaks.
    pub(crate) fn pool(&self, raw: &str) -> Result<PoolId, FieldError> {
        PoolId::parse(raw).and_then(|pool| self.check(&pool).map(|()| pool))
    }

    /// Whether attrgate may call the region it would use for `pool`: the fixed region, or
    /// else the pool id's part before `_`, which must then look like an AWS region. With
    /// a fixed region that part is only a name (cognito-local's ids are `local_…`).
    ///
    /// # Errors
    /// The pool id names no region and none is fixed, or the region is not in
    /// `cognito.allowed_regions` (a 422, before any connection).
    pub(crate) fn check(&self, pool: &PoolId) -> Result<(), FieldError> {
        if self.fixed.is_none() && !REGION.is_match(pool.region()) {
            return Err(FieldError::new(
                "pool_id",
                "the part before '_' must be an AWS region name, such as us-east-1",
            ));
        }
        let region = self.fixed.as_deref().unwrap_or(pool.region());
        match &self.allowed {
            Some(allowed) if !allowed.iter().any(|r| r == region) => Err(FieldError::new(
                "pool_id",
                format!("region {region} is not one this gateway serves"),
            )),
            _ => Ok(()),
        }
    }
}

/// A Cognito username: 1 to 128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Username(String);

impl Username {
    pub(crate) fn parse(raw: &str) -> Result<Self, FieldError> {
        let count = raw.chars().count();
        if count == 0 || count > MAX_USERNAME_CHARS {
            return Err(FieldError::new("username", "must be 1 to 128 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldError::new(
                "username",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Attribute changes that passed every input rule: names are known, values well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttributeChanges(BTreeMap<String, String>);

impl AttributeChanges {
    /// Checks every attribute and reports every problem, not just the first.
    pub(crate) fn parse(attributes: BTreeMap<String, String>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if attributes.len() > MAX_ATTRIBUTES {
            errors.push(FieldError::new(
                "attributes",
                format!(
                    "at most {MAX_ATTRIBUTES} attributes per request, got {}",
                    attributes.len()
                ),
            ));
        }
        for (name, value) in &attributes {
            let field = format!("attributes.{name}");
            if let Err(message) = check_name(name) {
                errors.push(FieldError::new(field, message));
                continue;
            }
            if let Err(message) = check_value(name, value) {
                errors.push(FieldError::new(field, message));
            }
        }
        if errors.is_empty() {
            Ok(Self(attributes))
        } else {
            Err(errors)
        }
    }

    pub(crate) fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

fn check_value(name: &str, value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(format!("values are at most {MAX_VALUE_CHARS} characters"));
    }
    match name {
        "email_verified" | "phone_number_verified" if value != "true" && value != "false" => {
            Err("must be \"true\" or \"false\"".to_owned())
        }
        // An empty value deletes the attribute, so it needs no format.
        "email" if !value.is_empty() && !value.validate_email() => {
            Err("must be a valid email address".to_owned())
        }
        "phone_number" if !value.is_empty() && !E164.is_match(value) => {
            Err("must be E.164: '+' followed by 1 to 15 digits".to_owned())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn messages(result: Result<AttributeChanges, Vec<FieldError>>) -> Vec<FieldError> {
        result.expect_err("expected the input to be rejected")
    }

    #[test]
    fn emulator_and_real_pool_ids_pass_and_their_region_is_the_part_before_the_underscore() {
        let emulator = PoolId::parse("us-east-1_0123456789abcdef0123456789abcdef").unwrap();
        let real = PoolId::parse("eu-west-2_AbC123xyz").unwrap();

        assert_eq!(emulator.region(), "us-east-1");
        assert_eq!(real.region(), "eu-west-2");
    }

    fn fixed(region: &str) -> Regions {
        Regions {
            fixed: Some(region.to_owned()),
            allowed: None,
        }
    }

    #[test]
    fn without_a_fixed_region_a_pool_id_is_ascii_and_its_region_part_looks_like_an_aws_region() {
        let regions = Regions::default();

        for good in [
            "us-gov-west-1_Ab1",
            "ap-southeast-2_X",
            "eu-central-1_0a",
            "il-central-1_x",
            "cn-northwest-1_x",
        ] {
            assert!(regions.pool(good).is_ok(), "{good}");
        }
        for bad in [
            "zz-nowhere-9_x",
            "zz-nowhere-9x_x",
            "us-e\u{430}st-1_x",
            "\u{430}s-east-1_x",
            "us_east_1_x",
            "US-EAST-1_x",
            "us-east_x",
            "local_4a5b6c",
        ] {
            assert!(regions.pool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn with_a_fixed_region_any_name_of_letters_digits_and_dashes_may_come_before_the_underscore() {
        let regions = fixed("us-east-1");

        let accepted: Vec<String> = ["local_4a5b6c7d", "us-east-1_AbC123", "My-Pool-2_x", "X_1"]
            .into_iter()
            .map(|raw| regions.pool(raw).unwrap().as_str().to_owned())
            .collect();

        assert_eq!(
            accepted,
            ["local_4a5b6c7d", "us-east-1_AbC123", "My-Pool-2_x", "X_1"]
        );
    }

    #[test]
    fn with_a_fixed_region_the_pool_id_keeps_its_shape_rules() {
        let regions = fixed("us-east-1");

        for bad in [
            "",
            "local",
            "local_",
            "_abc",
            "lo cal_x",
            "l\u{f6}cal_x",
            "local_a-b",
            "local_a/b",
            &format!("local_{}", "a".repeat(50)),
        ] {
            assert!(regions.pool(bad).is_err(), "{bad:?}");
        }
        assert!(regions.pool(&format!("local_{}", "a".repeat(49))).is_ok());
    }

    #[test]
    fn with_a_fixed_region_allowed_regions_judge_the_fixed_region_not_the_pool_ids_prefix() {
        let pool = PoolId::parse("local_x").unwrap();
        let refused = Regions {
            fixed: Some("eu-west-1".into()),
            allowed: Some(vec!["us-east-1".to_owned()]),
        };

        let error = refused.check(&pool).unwrap_err();

        assert!(error.message.contains("eu-west-1"), "{}", error.message);
        assert!(fixed("us-east-1").check(&pool).is_ok());
    }

    #[test]
    fn allowed_regions_refuse_a_pool_in_another_region_and_a_fixed_region_is_what_counts() {
        let pool = PoolId::parse("eu-west-1_x").unwrap();
        let allowed = Some(vec!["us-east-1".to_owned()]);

        let open = Regions::default().check(&pool);
        let refused = Regions {
            fixed: None,
            allowed: allowed.clone(),
        }
        .check(&pool);
        let fixed = Regions {
            fixed: Some("us-east-1".into()),
            allowed,
        }
        .check(&pool);

        assert!(open.is_ok());
        assert!(refused.unwrap_err().message.contains("eu-west-1"));
        assert!(fixed.is_ok());
    }

    #[test]
    fn malformed_or_overlong_pool_ids_are_rejected() {
        for raw in [
            "",
            "nounderscore",
            "us-east-1_",
            "us east_1",
            "us-east-1_a/b",
            &format!("us-east-1_{}", "a".repeat(50)),
        ] {
            assert!(PoolId::parse(raw).is_err(), "{raw:?} should be rejected");
        }
    }

    #[test]
    fn usernames_must_be_1_to_128_characters_without_control_characters() {
        assert!(Username::parse("ann").is_ok());
        assert!(Username::parse(&"é".repeat(128)).is_ok());
        assert!(Username::parse("").is_err());
        assert!(Username::parse(&"a".repeat(129)).is_err());
        assert!(Username::parse("ann\n").is_err());
    }

    #[test]
    fn standard_custom_and_dev_attributes_with_good_values_pass() {
        let input = attrs(&[
            ("given_name", "Ann"),
            ("email", "ann@example.com"),
            ("email_verified", "true"),
            ("phone_number", "+447700900123"),
            ("phone_number_verified", "false"),
            ("custom:plan", "pro"),
            ("dev:flag", ""),
        ]);

        let parsed = AttributeChanges::parse(input.clone()).unwrap();

        assert_eq!(parsed.as_map(), &input);
    }

    #[test]
    fn an_unknown_bare_name_is_rejected_with_a_custom_prefix_hint() {
        let errors = messages(AttributeChanges::parse(attrs(&[("tier", "gold")])));

        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "attributes.tier");
        assert!(
            errors[0].message.contains("did you mean custom:tier?"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_misspelt_standard_name_is_rejected_with_the_standard_name_as_hint() {
        let errors = messages(AttributeChanges::parse(attrs(&[("Email", "a@b.co")])));

        assert!(
            errors[0].message.contains("did you mean email?"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn sub_is_never_writable() {
        let errors = messages(AttributeChanges::parse(attrs(&[("sub", "x")])));

        assert!(errors[0].message.contains("never writable"));
    }

    #[test]
    fn every_bad_attribute_is_reported_not_just_the_first() {
        let input = attrs(&[
            ("email", "not-an-email"),
            ("phone_number", "07700900123"),
            ("email_verified", "yes"),
            ("phone_number_verified", ""),
            ("custom:", "x"),
            ("custom:long", &"x".repeat(2049)),
            (&"custom:".repeat(5), "x"),
        ]);

        let errors = messages(AttributeChanges::parse(input));

        assert_eq!(errors.len(), 7, "{errors:?}");
    }

    #[test]
    fn an_empty_value_deletes_so_email_and_phone_need_no_format_then() {
        assert!(AttributeChanges::parse(attrs(&[("email", ""), ("phone_number", "")])).is_ok());
    }

    #[test]
    fn phone_numbers_allow_at_most_15_digits() {
        assert!(AttributeChanges::parse(attrs(&[("phone_number", "+123456789012345")])).is_ok());
        assert!(AttributeChanges::parse(attrs(&[("phone_number", "+1234567890123456")])).is_err());
    }

    #[test]
    fn more_than_50_attributes_are_rejected() {
        let input: BTreeMap<String, String> = (0..51)
            .map(|i| (format!("custom:a{i}"), "v".to_owned()))
            .collect();

        let errors = messages(AttributeChanges::parse(input));

        assert_eq!(errors[0].field, "attributes");
    }

    #[test]
    fn values_of_exactly_2048_characters_pass() {
        assert!(AttributeChanges::parse(attrs(&[("custom:x", &"é".repeat(2048))])).is_ok());
    }
}
