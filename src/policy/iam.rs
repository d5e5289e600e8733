//! The least-privilege IAM policy the gateway needs for a policy file: which Cognito
//! actions on which user pools (`attrgate policy iam`). PURE: must not depend on actix,
//! aws, tokio or the filesystem; the options come in as values.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::compile::{Policy, Role};
use super::glob::Glob;
use super::target::Condition;

/// An AWS account id: exactly 12 ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountId(String);

impl AccountId {
    /// # Errors
    /// `raw` is not 12 ASCII digits.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "account id {raw:?} is not an AWS account id (12 digits)"
            ))
        }
    }
}

/// The AWS partition the ARNs are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
}

impl Partition {
    /// # Errors
    /// `raw` is not `aws`, `aws-cn` or `aws-us-gov`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "aws" => Ok(Self::Aws),
            "aws-cn" => Ok(Self::AwsCn),
            "aws-us-gov" => Ok(Self::AwsUsGov),
            _ => Err(format!(
                "partition {raw:?} is not one of aws, aws-cn, aws-us-gov"
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsCn => "aws-cn",
            Self::AwsUsGov => "aws-us-gov",
        }
    }
}

/// What the gateway's config says about where it calls Cognito, and in which account.
#[derive(Debug, Clone)]
pub struct IamOptions {
    pub account: AccountId,
    pub partition: Partition,
    /// `cognito.region`: every pool is in this region.
    pub region: Option<String>,
    /// `cognito.allowed_regions`: pools in any other region are refused before Cognito.
    pub allowed_regions: Option<Vec<String>>,
    /// `cognito.validate_schema`: DescribeUserPool for every pool a role applies to.
    pub validate_schema: bool,
    /// The EventBridge buses of `events.sinks`: PutEvents on each.
    pub event_buses: Vec<EventBus>,
}

/// An EventBridge sink's bus: its name and region (`None`: the region of the AWS chain,
/// unknown here, so any region).
#[derive(Debug, Clone)]
pub struct EventBus {
    pub name: String,
    pub region: Option<String>,
}

const PUT_EVENTS: &str = "events:PutEvents";

const UPDATE: &str = "cognito-idp:AdminUpdateUserAttributes";
const DESCRIBE: &str = "cognito-idp:DescribeUserPool";
const GET_USER: &str = "cognito-idp:AdminGetUser";
const LIST_GROUPS: &str = "cognito-idp:AdminListGroupsForUser";

/// The IAM policy document (JSON) granting the gateway exactly the Cognito actions it
/// calls for `policy`, on the user pools its roles apply to. Statements group the
/// resources that need the same actions, so no pool gets an action it does not need.
/// A policy whose roles need nothing gives an empty `Statement` list.
#[must_use]
pub fn iam_policy(policy: &Policy, options: &IamOptions) -> Value {
    let mut needs: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for role in &policy.roles {
        let actions = role_actions(role, options.validate_schema);
        if actions.is_empty() {
            continue;
        }
        for pool in &role.pools {
            for arn in pool_arns(pool, options) {
                needs.entry(arn).or_default().extend(&actions);
            }
        }
    }
    let needs = without_covered(needs);
    let mut statements: BTreeMap<BTreeSet<&'static str>, Vec<String>> = BTreeMap::new();
    for (arn, actions) in needs {
        statements.entry(actions).or_default().push(arn);
    }
    let statements: Vec<Value> = statements
        .into_iter()
        .map(|(actions, resources)| {
            json!({
                "Sid": sid(&actions),
                "Effect": "Allow",
                "Action": actions,
                "Resource": resources,
            })
        })
        .collect();
    let mut statements = statements;
    if !options.event_buses.is_empty() {
        let buses: BTreeSet<String> = options
            .event_buses
            .iter()
            .map(|bus| {
                // A bus named by its ARN is its own resource.
                if bus.name.starts_with("arn:") {
                    return bus.name.clone();
                }
                format!(
                    "arn:{}:events:{}:{}:event-bus/{}",
                    options.partition.as_str(),
                    bus.region.as_deref().unwrap_or("*"),
                    options.account.0,
                    bus.name
                )
            })
            .collect();
        statements.push(json!({
            "Sid": "AttrgatePutEvents",
            "Effect": "Allow",
            "Action": [PUT_EVENTS],
            "Resource": buses,
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The Cognito actions a request under `role` can make attrgate call.
fn role_actions(role: &Role, validate_schema: bool) -> BTreeSet<&'static str> {
    let mut actions = BTreeSet::new();
    if !role.update.is_empty() || !role.verify.is_empty() {
        actions.insert(UPDATE);
    }
    // The schema is read for every caller with a role in the pool, before the decision.
    if validate_schema {
        actions.insert(DESCRIBE);
    }
    // Every caller with a role in the pool may read a user (`GET …/attributes`, which
    // reads it even to count what it withholds) and may update conditionally
    // (`If-Match`, which reads it to compare tags), as do `target` conditions.
    actions.insert(GET_USER);
    if let Some(target) = &role.target
        && target.conditions.iter().any(Condition::needs_groups)
    {
        actions.insert(LIST_GROUPS);
    }
    actions
}

/// The user-pool ARNs for a role's `pools` glob: one per region the gateway may call
/// for the pools it matches.
fn pool_arns(pool: &Glob, options: &IamOptions) -> Vec<String> {
    let region = match &options.region {
        Some(fixed) => fixed.clone(),
        // Pool ids have one `_`, so a `*` before the glob's first `_` stays in the region.
        None => match pool.as_str().split_once('_') {
            Some((prefix, _)) if !prefix.is_empty() => prefix.to_owned(),
            _ => "*".to_owned(),
        },
    };
    let regions = match &options.allowed_regions {
        None => vec![region],
        Some(allowed) => {
            let region = Glob::parse(&region).unwrap_or_else(|_| Glob::any());
            allowed
                .iter()
                .filter(|name| region.matches(name))
                .cloned()
                .collect()
        }
    };
    regions
        .into_iter()
        .map(|region| {
            format!(
                "arn:{}:cognito-idp:{region}:{}:userpool/{pool}",
                options.partition.as_str(),
                options.account.0
            )
        })
        .collect()
}

/// Drops each ARN that another ARN's glob covers with at least the same actions.
fn without_covered(
    needs: BTreeMap<String, BTreeSet<&'static str>>,
) -> BTreeMap<String, BTreeSet<&'static str>> {
    let globs: Vec<(Glob, &BTreeSet<&'static str>)> = needs
        .iter()
        .filter_map(|(arn, actions)| Glob::parse(arn).ok().map(|glob| (glob, actions)))
        .collect();
    let covered: BTreeSet<String> = needs
        .iter()
        .filter(|(arn, actions)| {
            let Ok(this) = Glob::parse(arn) else {
                return false;
            };
            globs.iter().any(|(other, wider)| {
                other.as_str() != arn.as_str() && other.covers(&this) && actions.is_subset(wider)
            })
        })
        .map(|(arn, _)| arn.clone())
        .collect();
    needs
        .into_iter()
        .filter(|(arn, _)| !covered.contains(arn))
        .collect()
}

/// A statement id naming its actions: `AttrgateUpdateDescribe`.
fn sid(actions: &BTreeSet<&'static str>) -> String {
    let mut sid = String::from("Attrgate");
    for (action, word) in [
        (UPDATE, "Update"),
        (DESCRIBE, "Describe"),
        (GET_USER, "GetUser"),
        (LIST_GROUPS, "ListGroups"),
    ] {
        if actions.contains(action) {
            sid.push_str(word);
        }
    }
    sid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> IamOptions {
        IamOptions {
            account: AccountId::parse("123456789012").unwrap(),
            partition: Partition::Aws,
            region: None,
            allowed_regions: None,
            validate_schema: true,
            event_buses: Vec::new(),
        }
    }

    #[test]
    fn each_eventbridge_sink_adds_put_events_on_its_bus_and_no_sink_adds_nothing() {
        let policy = policy("version: 1\nroles:\n  crm:\n    update: [given_name]\n");
        let options = IamOptions {
            event_buses: vec![
                EventBus {
                    name: "users".into(),
                    region: Some("eu-west-1".into()),
                },
                EventBus {
                    name: "audit".into(),
                    region: None,
                },
                EventBus {
                    name: "arn:aws:events:us-west-2:210987654321:event-bus/shared".into(),
                    region: None,
                },
            ],
            ..options()
        };

        let with = iam_policy(&policy, &options);
        let without = iam_policy(&policy, &super::tests::options());

        let last = with["Statement"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["Action"], json!(["events:PutEvents"]));
        assert_eq!(
            last["Resource"],
            json!([
                "arn:aws:events:*:123456789012:event-bus/audit",
                "arn:aws:events:eu-west-1:123456789012:event-bus/users",
                "arn:aws:events:us-west-2:210987654321:event-bus/shared"
            ])
        );
        assert!(!without.to_string().contains("events:"));
    }

    fn policy(yaml: &str) -> Policy {
        Policy::parse(yaml).expect("test policy is valid")
    }

    /// The statements as (actions, resources), for short assertions.
    fn statements(document: &Value) -> Vec<(Vec<String>, Vec<String>)> {
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item.as_str().unwrap().to_owned())
                .collect()
        };
        document["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|statement| {
                (
                    strings(&statement["Action"]),
                    strings(&statement["Resource"]),
                )
            })
            .collect()
    }

    const ARN: &str = "arn:aws:cognito-idp";

    #[test]
    fn a_role_that_updates_every_pool_needs_update_and_describe_on_every_pool_in_any_region() {
        // Arrange
        let policy = policy("version: 1\nroles:\n  support:\n    update: [given_name]\n");

        // Act
        let document = iam_policy(&policy, &options());

        // Assert
        assert_eq!(document["Version"], "2012-10-17");
        assert_eq!(document["Statement"][0]["Effect"], "Allow");
        assert_eq!(
            statements(&document),
            [(
                vec![GET_USER.to_owned(), UPDATE.to_owned(), DESCRIBE.to_owned()],
                vec![format!("{ARN}:*:123456789012:userpool/*")]
            )]
        );
    }

    #[test]
    fn without_schema_validation_describe_user_pool_is_not_granted() {
        // Arrange
        let policy = policy("version: 1\nroles:\n  support:\n    update: [given_name]\n");
        let options = IamOptions {
            validate_schema: false,
            ..options()
        };

        // Act
        let document = iam_policy(&policy, &options);

        // Assert
        assert_eq!(
            statements(&document),
            [(
                vec![GET_USER.to_owned(), UPDATE.to_owned()],
                vec![format!("{ARN}:*:123456789012:userpool/*")]
            )]
        );
    }

    #[test]
    fn every_role_reads_users_and_group_conditions_add_list_groups_only_on_that_roles_pools() {
        // Arrange
        let policy = policy(
            r#"version: 1
roles:
  plain:
    pools: ["us-east-1_plain"]
    update: [given_name]
  tenant:
    pools: ["eu-west-1_*"]
    update: [given_name]
    target:
      attributes:
        "custom:tenant_id": {equals_claim: tenant}
  grouped:
    pools: ["ap-southeast-2_G*"]
    verify: [email]
    target:
      groups:
        none_of: [admins]
"#,
        );

        // Act
        let document = iam_policy(&policy, &options());

        // Assert
        assert_eq!(
            statements(&document),
            [
                (
                    vec![
                        GET_USER.to_owned(),
                        LIST_GROUPS.to_owned(),
                        UPDATE.to_owned(),
                        DESCRIBE.to_owned()
                    ],
                    vec![format!(
                        "{ARN}:ap-southeast-2:123456789012:userpool/ap-southeast-2_G*"
                    )]
                ),
                (
                    vec![GET_USER.to_owned(), UPDATE.to_owned(), DESCRIBE.to_owned()],
                    vec![
                        format!("{ARN}:eu-west-1:123456789012:userpool/eu-west-1_*"),
                        format!("{ARN}:us-east-1:123456789012:userpool/us-east-1_plain")
                    ]
                ),
            ]
        );
    }

    #[test]
    fn a_fixed_region_is_the_region_of_every_arn_whatever_the_pool_glob_says() {
        // Arrange
        let policy = policy(
            "version: 1\nroles:\n  a:\n    pools: [\"local_*\", \"eu-west-1_x\"]\n    update: [name]\n",
        );
        let options = IamOptions {
            region: Some("us-east-1".into()),
            ..options()
        };

        // Act
        let document = iam_policy(&policy, &options);

        // Assert
        assert_eq!(
            statements(&document)[0].1,
            [
                format!("{ARN}:us-east-1:123456789012:userpool/eu-west-1_x"),
                format!("{ARN}:us-east-1:123456789012:userpool/local_*"),
            ]
        );
    }

    #[test]
    fn allowed_regions_narrow_a_wildcard_region_and_drop_pools_in_other_regions() {
        // Arrange
        let policy = policy(
            "version: 1\nroles:\n  a:\n    pools: [\"*\", \"eu-west-1_x\"]\n    update: [name]\n",
        );
        let options = IamOptions {
            allowed_regions: Some(vec!["us-east-1".into(), "us-west-2".into()]),
            ..options()
        };

        // Act
        let document = iam_policy(&policy, &options);

        // Assert
        assert_eq!(
            statements(&document)[0].1,
            [
                format!("{ARN}:us-east-1:123456789012:userpool/*"),
                format!("{ARN}:us-west-2:123456789012:userpool/*"),
            ]
        );
    }

    #[test]
    fn a_pool_covered_by_a_wider_pool_with_the_same_actions_is_not_listed_twice() {
        // Arrange
        let policy = policy(
            r#"version: 1
roles:
  wide:
    update: [name]
  narrow:
    pools: ["us-east-1_*"]
    update: [given_name]
"#,
        );

        // Act
        let document = iam_policy(&policy, &options());

        // Assert
        assert_eq!(
            statements(&document)[0].1,
            [format!("{ARN}:*:123456789012:userpool/*")]
        );
        assert_eq!(statements(&document).len(), 1);
    }

    #[test]
    fn a_role_that_grants_nothing_still_needs_the_schema_and_user_reads_but_no_update() {
        // Arrange
        let policy = policy(
            "version: 1\nroles:\n  blocked:\n    pools: [\"us-east-1_x\"]\n    deny: [\"*\"]\n",
        );
        let without = IamOptions {
            validate_schema: false,
            ..options()
        };

        // Act
        let with_schema = iam_policy(&policy, &options());
        let without_schema = iam_policy(&policy, &without);

        // Assert
        assert_eq!(
            statements(&with_schema),
            [(
                vec![GET_USER.to_owned(), DESCRIBE.to_owned()],
                vec![format!("{ARN}:us-east-1:123456789012:userpool/us-east-1_x")]
            )]
        );
        assert_eq!(
            statements(&without_schema),
            [(
                vec![GET_USER.to_owned()],
                vec![format!("{ARN}:us-east-1:123456789012:userpool/us-east-1_x")]
            )],
            "a read by that role still reads the user"
        );
    }

    #[test]
    fn the_partition_and_account_go_into_every_arn() {
        // Arrange
        let policy = policy("version: 1\nroles:\n  a:\n    update: [name]\n");
        let options = IamOptions {
            partition: Partition::parse("aws-us-gov").unwrap(),
            account: AccountId::parse("000000000001").unwrap(),
            ..options()
        };

        // Act
        let document = iam_policy(&policy, &options);

        // Assert
        assert_eq!(
            statements(&document)[0].1,
            ["arn:aws-us-gov:cognito-idp:*:000000000001:userpool/*"]
        );
    }

    #[test]
    fn account_ids_are_12_digits_and_partitions_are_the_three_aws_ones() {
        for good in ["123456789012", "000000000000"] {
            assert!(AccountId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "١٢٣٤٥٦٧٨٩٠١٢",
        ] {
            assert!(AccountId::parse(bad).is_err(), "{bad}");
        }
        for good in ["aws", "aws-cn", "aws-us-gov"] {
            assert!(Partition::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "AWS", "aws-iso", "aws-eusc"] {
            assert!(Partition::parse(bad).is_err(), "{bad}");
        }
    }
}
