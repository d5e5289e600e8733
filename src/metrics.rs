//! Prometheus metrics: request counts by route and status, decisions by outcome,
//! Cognito latency, audit and auth failures. Depends on nothing else in attrgate.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub(crate) struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub decisions: IntCounterVec,
    pub cognito_seconds: HistogramVec,
    pub audit_records: IntCounter,
    pub audit_failures: IntCounter,
    pub audit_syncs: IntCounter,
    pub auth_failures: IntCounterVec,
    pub policy_info: IntGaugeVec,
    pub policy_reloads: IntCounter,
    pub policy_reload_failures: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "attrgate_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let decisions = IntCounterVec::new(
            Opts::new(
                "attrgate_decisions_total",
                "Attribute update requests by outcome (updated, denied, invalid, dry_run, or an upstream error)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let cognito_seconds = HistogramVec::new(
            HistogramOpts::new(
                "attrgate_cognito_request_duration_seconds",
                "Cognito call latency",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["operation", "result"],
        )
        .expect("valid metric");
        let audit_records =
            IntCounter::new("attrgate_audit_records_total", "Audit records made durable")
                .expect("valid metric");
        let audit_syncs = IntCounter::new(
            "attrgate_audit_syncs_total",
            "Audit batches written and synced (records / syncs = the group-commit batch size)",
        )
        .expect("valid metric");
        let audit_failures = IntCounter::new(
            "attrgate_audit_failures_total",
            "Audit batches that could not be written or synced",
        )
        .expect("valid metric");
        let auth_failures = IntCounterVec::new(
            Opts::new("attrgate_auth_failures_total", "Refused tokens by reason"),
            &["reason"],
        )
        .expect("valid metric");
        let policy_info = IntGaugeVec::new(
            Opts::new(
                "attrgate_policy_info",
                "The loaded policy revision (value 1)",
            ),
            &["revision"],
        )
        .expect("valid metric");
        let policy_reloads = IntCounter::new(
            "attrgate_policy_reloads_total",
            "Reloads that put a new policy revision in force",
        )
        .expect("valid metric");
        let policy_reload_failures = IntCounter::new(
            "attrgate_policy_reload_failures_total",
            "Reloads rejected because the policy file could not be read or is invalid; the previous policy stays",
        )
        .expect("valid metric");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(decisions.clone()),
            Box::new(cognito_seconds.clone()),
            Box::new(audit_records.clone()),
            Box::new(audit_failures.clone()),
            Box::new(audit_syncs.clone()),
            Box::new(auth_failures.clone()),
            Box::new(policy_info.clone()),
            Box::new(policy_reloads.clone()),
            Box::new(policy_reload_failures.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Self {
            registry,
            http_requests,
            decisions,
            cognito_seconds,
            audit_records,
            audit_failures,
            audit_syncs,
            auth_failures,
            policy_info,
            policy_reloads,
            policy_reload_failures,
        }
    }

    /// Makes `revision` the only label of `attrgate_policy_info`.
    pub(crate) fn set_policy_revision(&self, previous: Option<&str>, revision: &str) {
        if let Some(previous) = previous.filter(|previous| *previous != revision) {
            // An absent label is not an error worth reporting.
            let _ = self.policy_info.remove_label_values(&[previous]);
        }
        self.policy_info.with_label_values(&[revision]).set(1);
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics");
        String::from_utf8(buffer).expect("prometheus text is UTF-8")
    }
}
