//! [`RedisHealthChecker`]: PING latency, server version and role, and whether the server may evict keys the lock
//! and the job queue need.

use std::time::Instant;

use cpc_ports::{HealthCheck, HealthReport, HealthStatus, KvError};

use super::RedisManager;
use super::connection::ScanTarget;

/// Checks Redis through the manager's shared connection: `PING` round trip, then `INFO server`,
/// `INFO replication` and `INFO memory` for the version, role and eviction policy (on a cluster, `CLUSTER INFO`
/// for its state: `Degraded` unless `ok`). Never fails: problems are an `Unhealthy` report.
///
/// `Degraded` when the server's `maxmemory-policy` is an `allkeys-*` one: under memory pressure it may evict keys
/// without a TTL, which the job queue's keys are while they hold jobs still to be worked (a lost stream or jobs hash
/// loses jobs). `noeviction` or a `volatile-*` policy keeps them. On a cluster each master's policy is read
/// (`INFO memory` on every master), and one `allkeys-*` master degrades the report.
///
/// An ACL user refused `INFO` on one server gets the `PING` verdict with an `info` detail saying what was not
/// checked, instead of a `Degraded` report for a server that is fine.
#[derive(Debug, Clone)]
pub struct RedisHealthChecker {
    manager: RedisManager,
}

impl RedisHealthChecker {
    /// A check over `manager`.
    pub fn new(manager: RedisManager) -> Self {
        Self { manager }
    }
}

impl RedisHealthChecker {
    /// On a cluster: `CLUSTER INFO`'s `cluster_state` and slot count; `Degraded` unless the state is `ok`.
    async fn cluster_details(&self, report: HealthReport) -> HealthReport {
        let report = report
            .with_detail("nodes", self.manager.config().address())
            .with_detail("namespace", &self.manager.config().namespace);
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        match self.manager.query::<String>(&info, "cluster info").await {
            Ok(text) => {
                let state = info_field(&text, "cluster_state").unwrap_or_default();
                let mut r = report.with_detail("cluster_state", &state);
                if let Some(slots) = info_field(&text, "cluster_slots_ok") {
                    r = r.with_detail("cluster_slots_ok", slots);
                }
                let r = if state == "ok" { r } else { HealthReport { status: HealthStatus::Degraded, ..r } };
                self.masters_eviction(r).await
            }
            Err(e) => HealthReport { status: HealthStatus::Degraded, ..report }.with_detail("error", e),
        }
    }

    /// On a cluster: `INFO memory` on every master; `Degraded` if any may evict keys without a TTL.
    async fn masters_eviction(&self, report: HealthReport) -> HealthReport {
        let mut conn = self.manager.connection();
        let targets = match conn.scan_targets().await {
            Ok(targets) => targets,
            Err(e) => {
                return report.with_detail("info", format!("masters not listed, eviction policy not checked: {e}"));
            }
        };
        let mut policies = Vec::new();
        for target in targets {
            let node = match &target {
                ScanTarget::Node(host, port) => format!("{host}:{port}"),
                ScanTarget::Server => self.manager.config().address(),
            };
            match conn.query_on::<String>(&target, redis::cmd("INFO").arg("memory")).await {
                Ok(text) => policies.push((node, info_field(&text, "maxmemory_policy").unwrap_or_default())),
                Err(e) => {
                    return report
                        .with_detail("info", format!("INFO refused by {node}, eviction policy not checked: {e}"));
                }
            }
        }
        let listed = policies.iter().map(|(node, policy)| format!("{node}={policy}")).collect::<Vec<_>>().join(",");
        let report = report.with_detail("maxmemory_policy", listed);
        match policies.iter().find(|(_, policy)| may_evict_durable_keys(policy)) {
            Some((node, policy)) => HealthReport {
                status: HealthStatus::Degraded,
                ..report.with_detail("reason", eviction_reason(&format!("{policy} on {node}")))
            },
            None => report,
        }
    }
}

/// Whether `policy` may evict keys without a TTL (the `allkeys-*` ones; `noeviction` and `volatile-*` do not).
fn may_evict_durable_keys(policy: &str) -> bool {
    policy.starts_with("allkeys-")
}

/// Why an `allkeys-*` policy degrades the report.
fn eviction_reason(policy: &str) -> String {
    format!(
        "maxmemory-policy {policy} can evict keys without a TTL: the job queues' jobs still to be worked; use \
         noeviction or a volatile-* policy"
    )
}

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
}

#[async_trait::async_trait]
impl HealthCheck for RedisHealthChecker {
    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        let ping = self.manager.query::<String>(&redis::cmd("PING"), "ping").await;
        let latency = started.elapsed();
        let report = match ping {
            Ok(_) => HealthReport::new("redis", HealthStatus::Healthy, latency),
            Err(e) => {
                return HealthReport::new("redis", HealthStatus::Unhealthy, latency)
                    .with_detail("error", e)
                    .with_detail("address", self.manager.config().address());
            }
        };
        if self.manager.is_cluster() {
            return self.cluster_details(report).await;
        }
        let mut info = redis::cmd("INFO");
        info.arg("server").arg("replication").arg("memory");
        let report = match self.manager.query::<String>(&info, "info").await {
            Ok(text) => {
                let mut r = report;
                if let Some(v) = info_field(&text, "redis_version") {
                    r = r.with_detail("server_version", v);
                }
                if let Some(role) = info_field(&text, "role") {
                    r = r.with_detail("role", role);
                }
                match info_field(&text, "maxmemory_policy") {
                    Some(policy) if may_evict_durable_keys(&policy) => HealthReport {
                        status: HealthStatus::Degraded,
                        ..r.with_detail("maxmemory_policy", &policy).with_detail("reason", eviction_reason(&policy))
                    },
                    Some(policy) => r.with_detail("maxmemory_policy", policy),
                    None => r,
                }
            }
            // An ACL user may be refused INFO (`-info`): the server answered PING, so it is as healthy as
            // PING says; what could not be checked is said, not reported as a fault.
            Err(KvError::Authentication { .. }) => report.with_detail(
                "info",
                "INFO not permitted for this ACL user: version, role and eviction policy not checked (grant +info)",
            ),
            Err(e) => HealthReport { status: HealthStatus::Degraded, ..report }.with_detail("error", e),
        };
        report
            .with_detail("address", self.manager.config().address())
            .with_detail("namespace", &self.manager.config().namespace)
    }
}
