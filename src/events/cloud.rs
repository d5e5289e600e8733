//! An audit record as a CloudEvents 1.0 event (structured JSON): names, never values.
//! A pure function of the record and the configured types.

use serde::Serialize;
use serde_json::Value;

/// The type of an applied change.
pub(crate) const UPDATED: &str = "attrgate.attributes.updated";
/// The type of a request the policy denied (only when `events.types` lists it).
pub(crate) const DENIED: &str = "attrgate.attributes.denied";

/// One event, as every sink sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CloudEvent {
    pub specversion: &'static str,
    /// `<replica>:<seq>`: the same on every try and every replay.
    pub id: String,
    /// `attrgate/<replica>`.
    pub source: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `<pool_id>/<username>`.
    pub subject: String,
    pub time: String,
    pub datacontenttype: &'static str,
    pub data: EventData,
}

/// What changed (or was refused), by name only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct EventData {
    pub pool_id: String,
    pub username: String,
    /// The attribute names written (updated) or requested (denied); never a value.
    pub changed: Vec<String>,
    pub caller: EventCaller,
    pub request_id: String,
    pub policy_revision: String,
    /// The audit record's `hash`: prove the event against a signed checkpoint.
    pub record_hash: String,
    /// For a denied request: each refused attribute with its reason code.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct EventCaller {
    pub iss: String,
    pub sub: String,
}

/// Which records become events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Types {
    pub updated: bool,
    pub denied: bool,
}

impl Types {
    pub(crate) fn from_names(names: &[String]) -> Self {
        Self {
            updated: names.iter().any(|name| name == UPDATED),
            denied: names.iter().any(|name| name == DENIED),
        }
    }
}

/// The `seq` of a record line, if it has one.
pub(crate) fn seq_of(record: &Value) -> Option<u64> {
    record.get("seq").and_then(Value::as_u64)
}

/// The event a record stands for, if any: an update Cognito applied (outcome record,
/// `updated`) or, when asked for, an update the policy denied. `replica` names the log
/// when a record does not (logs written before records named their replica).
pub(crate) fn event_of(record: &Value, types: Types, replica: &str) -> Option<CloudEvent> {
    let text = |key: &str| {
        record
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let event = record.get("event").and_then(Value::as_str)?;
    let outcome = record.get("outcome").and_then(Value::as_str)?;
    let kind = match (event, outcome) {
        ("outcome", "updated") if types.updated => UPDATED,
        ("request", "denied") if types.denied => DENIED,
        _ => return None,
    };
    let seq = seq_of(record)?;
    let replica = record
        .get("replica")
        .and_then(Value::as_str)
        .unwrap_or(replica);
    let caller = record.get("caller");
    let caller_text = |key: &str| {
        caller
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let changed = record
        .get("attributes")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let denied = if kind == DENIED {
        record
            .pointer("/decision/denied")
            .and_then(Value::as_array)
            .map(|denied| {
                denied
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "attribute": d.get("attribute").cloned().unwrap_or(Value::Null),
                            "code": d.get("code").cloned().unwrap_or(Value::Null),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (pool_id, username) = (text("pool_id"), text("username"));
    Some(CloudEvent {
        specversion: "1.0",
        id: format!("{replica}:{seq}"),
        source: format!("attrgate/{replica}"),
        kind,
        subject: format!("{pool_id}/{username}"),
        time: text("time"),
        datacontenttype: "application/json",
        data: EventData {
            pool_id,
            username,
            changed,
            caller: EventCaller {
                iss: caller_text("iss"),
                sub: caller_text("sub"),
            },
            request_id: text("request_id"),
            policy_revision: text("policy_revision"),
            record_hash: text("hash"),
            denied,
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const BOTH: Types = Types {
        updated: true,
        denied: true,
    };

    fn updated_record() -> Value {
        json!({
            "time": "2026-12-05T10:00:00Z", "request_id": "req-1", "event": "outcome",
            "caller": {"iss": "https://idp", "sub": "crm", "roles": ["support"]},
            "pool_id": "us-east-1_abc", "username": "ann",
            "attributes": ["email", "given_name"],
            "values": {"email": "9f2c", "given_name": "77aa"},
            "decision": {"allowed": true, "applicable_roles": ["support"], "denied": []},
            "policy_revision": "rev", "dry_run": false, "outcome": "updated",
            "cognito_request_id": "c-1", "replica": "gw-1", "seq": 42,
            "prev_hash": "00", "hash": "abcd"
        })
    }

    #[test]
    fn an_updated_outcome_record_becomes_an_event_with_names_and_the_record_hash() {
        let event = event_of(&updated_record(), BOTH, "unused").unwrap();

        assert_eq!(event.id, "gw-1:42");
        assert_eq!(event.source, "attrgate/gw-1");
        assert_eq!(event.kind, UPDATED);
        assert_eq!(event.subject, "us-east-1_abc/ann");
        assert_eq!(event.data.changed, ["email", "given_name"]);
        assert_eq!(event.data.record_hash, "abcd");
        assert_eq!(event.data.caller.sub, "crm");
        let body = serde_json::to_string(&event).unwrap();
        assert!(!body.contains("9f2c") && !body.contains("77aa"), "{body}");
        assert!(!body.contains("values"), "{body}");
    }

    #[test]
    fn intents_reads_dry_runs_and_failed_updates_are_not_events() {
        for (event, outcome) in [
            ("intent", "pending"),
            ("read", "read"),
            ("request", "dry_run"),
            ("outcome", "UserNotFoundException"),
            ("read", "denied"),
        ] {
            let mut record = updated_record();
            record["event"] = json!(event);
            record["outcome"] = json!(outcome);
            assert_eq!(event_of(&record, BOTH, "r"), None, "{event}/{outcome}");
        }
    }

    #[test]
    fn a_denied_request_is_an_event_only_when_its_type_is_configured() {
        let mut record = updated_record();
        record["event"] = json!("request");
        record["outcome"] = json!("denied");
        record["decision"]["denied"] =
            json!([{"attribute": "email_verified", "code": "not_verifiable", "roles": []}]);
        let only_updated = Types::from_names(&[UPDATED.to_owned()]);

        let event = event_of(&record, BOTH, "r").unwrap();

        assert_eq!(event.kind, DENIED);
        assert_eq!(
            event.data.denied,
            [json!({"attribute": "email_verified", "code": "not_verifiable"})]
        );
        assert_eq!(event_of(&record, only_updated, "r"), None);
    }

    #[test]
    fn a_record_without_a_replica_is_named_by_the_configured_one() {
        let mut record = updated_record();
        record.as_object_mut().unwrap().remove("replica");

        assert_eq!(event_of(&record, BOTH, "gw-9").unwrap().id, "gw-9:42");
    }
}
