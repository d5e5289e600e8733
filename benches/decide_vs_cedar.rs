//! `policy::decide` beside `cedar-policy`'s `is_authorized`, on equivalent policies of 1,
//! 10, 100 and 1,000 roles: the caller holds one role (the last one written) and asks
//! for 3 attributes. attrgate decides the 3 at once; Cedar answers one request per
//! attribute (resource = the attribute), so its figure is 3 `is_authorized` calls.
//! Behind the `cedar-bench` feature so that normal builds never compile Cedar:
//! `cargo bench --features cedar-bench --bench decide_vs_cedar`.
//! Results: docs/performance.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::str::FromStr;

use attrgate::policy::{DecisionRequest, Policy, decide};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, PolicySet, Request,
    RestrictedExpression,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const ASKED: [&str; 3] = ["given_name", "family_name", "nickname"];
const SIZES: [usize; 4] = [1, 10, 100, 1000];

/// Role i may update the three asked attributes and one of its own.
fn attrgate_policy(roles: usize) -> Policy {
    let mut yaml = String::from("version: 1\nprotected: [sub]\nroles:\n");
    for i in 0..roles {
        yaml.push_str(&format!(
            "  role{i}:\n    update: [given_name, family_name, nickname, \"custom:r{i}\"]\n"
        ));
    }
    Policy::parse(&yaml).expect("the generated policy compiles")
}

/// The same policy in Cedar: one permit per role, and `sub` forbidden to all.
fn cedar_policy(roles: usize) -> PolicySet {
    let mut text = String::from("forbid(principal, action, resource == Attribute::\"sub\");\n");
    for i in 0..roles {
        text.push_str(&format!(
            "permit(principal in Role::\"role{i}\", action == Action::\"update\", resource) \
             when {{ [Attribute::\"given_name\", Attribute::\"family_name\", \
             Attribute::\"nickname\", Attribute::\"custom:r{i}\"].contains(resource) }};\n"
        ));
    }
    PolicySet::from_str(&text).expect("the generated Cedar policies parse")
}

fn uid(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_str(&format!("{kind}::\"{id}\"")).expect("a valid entity uid")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide_3_attributes");
    for roles in SIZES {
        let held = format!("role{}", roles - 1);
        // attrgate
        let policy = attrgate_policy(roles);
        let caller_roles = vec![held.clone()];
        let attributes: BTreeMap<String, String> = ASKED
            .iter()
            .map(|name| ((*name).to_owned(), "x".to_owned()))
            .collect();
        let request = DecisionRequest::new(&caller_roles, "us-east-1_bench", &attributes);
        assert!(decide(&policy, &request).is_allowed());
        group.bench_with_input(BenchmarkId::new("attrgate", roles), &roles, |b, _| {
            b.iter(|| black_box(decide(black_box(&policy), black_box(&request))).is_allowed());
        });
        // Cedar
        let policies = cedar_policy(roles);
        let principal = uid("Caller", "bench");
        let caller = Entity::new(
            principal.clone(),
            std::collections::HashMap::<String, RestrictedExpression>::new(),
            [uid("Role", &held)].into_iter().collect(),
        )
        .expect("a valid entity");
        let entities = Entities::from_entities([caller], None).expect("valid entities");
        let action = uid("Action", "update");
        let requests: Vec<Request> = ASKED
            .iter()
            .map(|name| {
                Request::new(
                    principal.clone(),
                    action.clone(),
                    uid("Attribute", name),
                    Context::empty(),
                    None,
                )
                .expect("a valid request")
            })
            .collect();
        let authorizer = Authorizer::new();
        assert!(requests.iter().all(|r| {
            authorizer.is_authorized(r, &policies, &entities).decision() == Decision::Allow
        }));
        group.bench_with_input(BenchmarkId::new("cedar", roles), &roles, |b, _| {
            b.iter(|| {
                requests.iter().all(|r| {
                    black_box(authorizer.is_authorized(r, black_box(&policies), &entities))
                        .decision()
                        == Decision::Allow
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
