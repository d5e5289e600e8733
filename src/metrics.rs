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
    pub(crate) quota_tokens: IntGaugeVec,
    pub(crate) quota_refusals: IntCounterVec,
    pub(crate) quota_backend: IntGaugeVec,
    pub(crate) events_delivered: IntCounterVec,
    pub(crate) events_failures: IntCounterVec,
    pub(crate) events_lag: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers each metric as it is made.
struct Registrar(Registry);

impl Registrar {
    fn keep<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> M {
        self.0
            .register(Box::new(metric.clone()))
            .expect("metric registered once");
        metric
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.keep(IntCounter::new(name, help).expect("valid metric"))
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.keep(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.keep(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let r = Registrar(Registry::new());
        let cognito_seconds = r.keep(
            HistogramVec::new(
                HistogramOpts::new(
                    "attrgate_cognito_request_duration_seconds",
                    "Cognito call latency",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["operation", "result"],
            )
            .expect("valid metric"),
        );
        Self {
            http_requests: r.counters(
                "attrgate_http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            decisions: r.counters(
                "attrgate_decisions_total",
                "Attribute update requests by outcome (updated, denied, invalid, dry_run, throttled, or an upstream error)",
                &["outcome"],
            ),
            cognito_seconds,
            audit_records: r.counter("attrgate_audit_records_total", "Audit records made durable"),
            audit_failures: r.counter(
                "attrgate_audit_failures_total",
                "Audit batches that could not be written or synced",
            ),
            audit_syncs: r.counter(
                "attrgate_audit_syncs_total",
                "Audit batches written and synced (records / syncs = the group-commit batch size)",
            ),
            auth_failures: r.counters(
                "attrgate_auth_failures_total",
                "Refused tokens by reason",
                &["reason"],
            ),
            policy_info: r.gauges(
                "attrgate_policy_info",
                "The loaded policy revision (value 1)",
                &["revision"],
            ),
            policy_reloads: r.counter(
                "attrgate_policy_reloads_total",
                "Reloads that put a new policy revision in force",
            ),
            policy_reload_failures: r.counter(
                "attrgate_policy_reload_failures_total",
                "Reloads rejected because the policy file could not be read or is invalid; the previous policy stays",
            ),
            quota_tokens: r.gauges(
                "attrgate_quota_tokens",
                "Cognito calls left in this gateway's budget (the region used last), by category",
                &["category"],
            ),
            quota_refusals: r.counters(
                "attrgate_quota_refusals_total",
                "Cognito calls refused by this gateway's own budget (answered 429), by category",
                &["category"],
            ),
            quota_backend: r.gauges(
                "attrgate_quota_backend",
                "Which Cognito budget this gateway draws from (value 1): local, shared (Redis) or local-fallback (Redis does not answer)",
                &["mode"],
            ),
            events_delivered: r.counters(
                "attrgate_events_delivered_total",
                "Change events acknowledged by a sink, by sink",
                &["sink"],
            ),
            events_failures: r.counters(
                "attrgate_events_delivery_failures_total",
                "Failed tries to deliver change events (each is tried again after a backoff), by sink",
                &["sink"],
            ),
            events_lag: r.gauges(
                "attrgate_events_lag_records",
                "Audit records a sink has not gone past yet, by sink",
                &["sink"],
            ),
            registry: r.0,
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
