//! What `hblock exporter` serves: one scrape's numbers ([`Scrape`]) written
//! in Prometheus's text exposition format (version 0.0.4) by the
//! `prometheus-client` crate. Pure: no I/O, unit-tested.
//!
//! Names and labels are a contract (docs/operations.md, "Metrics"): per lock
//! `key`, on a cluster also `node` (`host:port`) on every series of a node.

use crate::commands::{Holding, LockInfo};
use crate::owner::owner_text;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The `Content-Type` of what [`render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// `INFO hblock` fields that are counters (exported as `hblock_<field>_total`);
/// every other numeric field is a gauge (`hblock_<field>`): `waiting`,
/// `epoch`, and fields of later module versions; a gauge field in
/// milliseconds (`failover_delay_left_ms`) is exported in seconds
/// (`hblock_failover_delay_left_seconds`), as Prometheus names units.
pub const INFO_COUNTERS: [&str; 10] = [
    "acquired",
    "released",
    "expired",
    "takeovers",
    "beats",
    "notheld",
    "wait_timeouts",
    "evicted",
    "failover_delayed",
    "unbound",
];

/// One lock as one scrape saw it.
#[derive(Clone, Debug)]
pub struct LockSample {
    /// The key's bytes (shown as UTF-8, or 0x hex when they are not).
    pub key: Vec<u8>,
    pub info: LockInfo,
    /// Every holder of a lock of LIMIT > 1 (HBLOCK.HOLDERS); empty for a
    /// one-holder lock (INFO names its holder) or when they could not be
    /// read (then INFO's, the lease that ends first, stands for them).
    pub holders: Vec<Holding>,
}

/// One server (a single server, or one master of a cluster) in one scrape.
#[derive(Clone, Debug, Default)]
pub struct NodeSample {
    /// `host:port` on a cluster; None for a single server (no `node` label).
    pub node: Option<String>,
    /// Reachable, and the module loaded.
    pub up: bool,
    /// `INFO hblock`'s fields, without the `hblock_` prefix, in its order.
    pub info: Vec<(String, u64)>,
    pub locks: Vec<LockSample>,
    /// Locks matching the patterns that `--max-locks` left out.
    pub left_out: u64,
}

/// One scrape: every node, and how long it took.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub nodes: Vec<NodeSample>,
    pub duration_seconds: f64,
}

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn labels(node: Option<&str>, pairs: &[(&str, String)]) -> Labels {
    let mut out: Labels = pairs
        .iter()
        .map(|(name, value)| ((*name).to_string(), value.clone()))
        .collect();
    if let Some(node) = node {
        out.push(("node".into(), node.to_string()));
    }
    out
}

/// An `INFO hblock` field name as a metric name part: `[a-z0-9_]`, other
/// characters become `_`.
fn metric_part(field: &str) -> String {
    field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The per-lock families, registered in this order.
struct LockFamilies {
    held: Family<Labels, Gauge>,
    token: Family<Labels, Gauge>,
    ttl: Family<Labels, FloatGauge>,
    waiters: Family<Labels, Gauge>,
    missed: Family<Labels, Gauge>,
    takeovers: Family<Labels, Counter>,
    holder: Family<Labels, Gauge>,
    limit: Family<Labels, Gauge>,
    holders: Family<Labels, Gauge>,
}

impl LockFamilies {
    fn register(registry: &mut Registry) -> LockFamilies {
        let f = LockFamilies {
            held: Family::default(),
            token: Family::default(),
            ttl: Family::default(),
            waiters: Family::default(),
            missed: Family::default(),
            takeovers: Family::default(),
            holder: Family::default(),
            limit: Family::default(),
            holders: Family::default(),
        };
        registry.register(
            "hblock_lock_held",
            "1 while the lock's lease is live (state held), else 0",
            f.held.clone(),
        );
        registry.register(
            "hblock_lock_token",
            "The lock's fencing token: the current lease's, or the last one's",
            f.token.clone(),
        );
        registry.register(
            "hblock_lock_ttl_seconds",
            "Seconds until the live lease expires (held), or until grants resume (held-back); -1 otherwise",
            f.ttl.clone(),
        );
        registry.register(
            "hblock_lock_waiters",
            "Clients blocked in HBLOCK.ACQUIRE ... WAIT on the lock",
            f.waiters.clone(),
        );
        registry.register(
            "hblock_lock_missed_beats",
            "Beat intervals the holder has missed so far (the lease expires at MISSES)",
            f.missed.clone(),
        );
        registry.register(
            "hblock_lock_takeovers",
            "Leases of this lock granted over an expired lease",
            f.takeovers.clone(),
        );
        registry.register(
            "hblock_lock_holder_info",
            "1 for each live lease's owner (label owner: UTF-8, or 0x hex when it is not)",
            f.holder.clone(),
        );
        registry.register(
            "hblock_lock_limit",
            "How many owners may hold the lock at once (ACQUIRE's LIMIT)",
            f.limit.clone(),
        );
        registry.register(
            "hblock_lock_holders",
            "How many owners hold the lock now",
            f.holders.clone(),
        );
        f
    }

    fn add(&self, node: Option<&str>, lock: &LockSample) {
        let key = owner_text(&lock.key);
        let l = labels(node, &[("key", key.clone())]);
        let info = &lock.info;
        let held = info.state == "held";
        self.held.get_or_create(&l).set(i64::from(held));
        self.token.get_or_create(&l).set(info.token);
        let ttl = if info.ttl < 0 {
            -1.0
        } else {
            info.ttl as f64 / 1000.0
        };
        self.ttl.get_or_create(&l).set(ttl);
        self.waiters.get_or_create(&l).set(info.waiters);
        self.missed.get_or_create(&l).set(info.missed);
        self.takeovers
            .get_or_create(&l)
            .inc_by(u64::try_from(info.takeovers).unwrap_or(0));
        self.limit.get_or_create(&l).set(info.limit);
        self.holders.get_or_create(&l).set(info.holders);
        let owners: Vec<&[u8]> = match (lock.holders.is_empty(), held, info.owner.as_deref()) {
            (false, _, _) => lock.holders.iter().map(|h| h.owner.as_slice()).collect(),
            (true, true, Some(owner)) => vec![owner],
            _ => vec![],
        };
        for owner in owners {
            let l = labels(node, &[("key", key.clone()), ("owner", owner_text(owner))]);
            self.holder.get_or_create(&l).set(1);
        }
    }
}

/// The scrape in the text exposition format.
pub fn render(scrape: &Scrape) -> String {
    let mut registry = Registry::default();
    let up: Family<Labels, Gauge> = Family::default();
    registry.register(
        "hblock_up",
        "1 when Redis answered and has the hblock module loaded, else 0",
        up.clone(),
    );
    let left_out: Family<Labels, Gauge> = Family::default();
    registry.register(
        "hblock_locks_left_out",
        "Locks matching the patterns that --max-locks left out of this scrape",
        left_out.clone(),
    );
    let duration: FloatGauge = Gauge::default();
    registry.register(
        "hblock_scrape_duration_seconds",
        "How long this scrape of Redis took",
        duration.clone(),
    );
    duration.set(scrape.duration_seconds);
    let locks = LockFamilies::register(&mut registry);

    // INFO hblock: one family per field, counters and gauges.
    let mut counters: Vec<(String, Family<Labels, Counter>)> = Vec::new();
    let mut gauges: Vec<(String, Family<Labels, Gauge>)> = Vec::new();
    let mut seconds: Vec<(String, Family<Labels, FloatGauge>)> = Vec::new();
    for node in &scrape.nodes {
        let l = labels(node.node.as_deref(), &[]);
        up.get_or_create(&l).set(i64::from(node.up));
        if !node.up {
            continue;
        }
        left_out
            .get_or_create(&l)
            .set(i64::try_from(node.left_out).unwrap_or(i64::MAX));
        for (field, value) in &node.info {
            let name = metric_part(field);
            if INFO_COUNTERS.contains(&field.as_str()) {
                let family = match counters.iter().find(|(n, _)| *n == name) {
                    Some((_, f)) => f.clone(),
                    None => {
                        let f = Family::default();
                        counters.push((name, f.clone()));
                        f
                    }
                };
                family.get_or_create(&l).inc_by(*value);
            } else if let Some(stem) = name.strip_suffix("_ms") {
                let name = format!("{stem}_seconds");
                let family = match seconds.iter().find(|(n, _)| *n == name) {
                    Some((_, f)) => f.clone(),
                    None => {
                        let f = Family::default();
                        seconds.push((name, f.clone()));
                        f
                    }
                };
                #[allow(clippy::cast_precision_loss)]
                family.get_or_create(&l).set(*value as f64 / 1000.0);
            } else {
                let family = match gauges.iter().find(|(n, _)| *n == name) {
                    Some((_, f)) => f.clone(),
                    None => {
                        let f = Family::default();
                        gauges.push((name, f.clone()));
                        f
                    }
                };
                family
                    .get_or_create(&l)
                    .set(i64::try_from(*value).unwrap_or(i64::MAX));
            }
        }
        for lock in &node.locks {
            locks.add(node.node.as_deref(), lock);
        }
    }
    for (name, family) in counters {
        let help = format!("INFO hblock's hblock_{name}, since the module was loaded");
        registry.register(format!("hblock_{name}"), help, family);
    }
    for (name, family) in gauges {
        let help = format!("INFO hblock's hblock_{name}");
        registry.register(format!("hblock_{name}"), help, family);
    }
    for (name, family) in seconds {
        let help = format!("INFO hblock's hblock_{name} (its _ms field / 1000)");
        registry.register(format!("hblock_{name}"), help, family);
    }
    let mut out = String::new();
    // Writing into a String cannot fail; an error would leave it partial.
    if prometheus_text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(key: &[u8], state: &str, owner: Option<&[u8]>, token: i64) -> LockSample {
        LockSample {
            key: key.to_vec(),
            info: LockInfo {
                state: state.into(),
                owner: owner.map(<[u8]>::to_vec),
                token,
                interval: 1000,
                misses: 3,
                missed: 1,
                ttl: if state == "held" { 2500 } else { -1 },
                beats: 4,
                age: 10,
                takeovers: 2,
                waiters: 3,
                bound: 0,
                limit: 1,
                holders: i64::from(state == "held"),
            },
            holders: vec![],
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn one_server() {
        let scrape = Scrape {
            nodes: vec![NodeSample {
                node: None,
                up: true,
                info: vec![("acquired".into(), 7), ("waiting".into(), 2)],
                locks: vec![
                    lock(b"a", "held", Some(b"web \"1\"\n"), 5),
                    lock(b"b\xff", "free", None, 3),
                ],
                left_out: 4,
            }],
            duration_seconds: 0.25,
        };
        let text = render(&scrape);
        let got = lines(&text);
        for want in [
            "hblock_up 1",
            "hblock_locks_left_out 4",
            "hblock_scrape_duration_seconds 0.25",
            "hblock_acquired_total 7",
            "hblock_waiting 2",
            "hblock_lock_held{key=\"a\"} 1",
            "hblock_lock_held{key=\"0x62ff\"} 0",
            "hblock_lock_token{key=\"a\"} 5",
            "hblock_lock_ttl_seconds{key=\"a\"} 2.5",
            "hblock_lock_ttl_seconds{key=\"0x62ff\"} -1.0",
            "hblock_lock_waiters{key=\"a\"} 3",
            "hblock_lock_missed_beats{key=\"a\"} 1",
            "hblock_lock_takeovers_total{key=\"a\"} 2",
            "hblock_lock_holder_info{key=\"a\",owner=\"web \\\"1\\\"\\n\"} 1",
        ] {
            assert!(got.contains(&want), "{want} missing from\n{text}");
        }
        assert!(
            text.contains("# TYPE hblock_acquired_total counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE hblock_waiting gauge"), "{text}");
        // A free lock has no holder_info series.
        assert_eq!(text.matches("hblock_lock_holder_info{").count(), 1);
    }

    #[test]
    fn cluster_nodes_and_a_down_node() {
        let scrape = Scrape {
            nodes: vec![
                NodeSample {
                    node: Some("127.0.0.1:7000".into()),
                    up: true,
                    info: vec![("acquired".into(), 1)],
                    locks: vec![lock(b"k", "held", Some(b"o"), 1)],
                    left_out: 0,
                },
                NodeSample {
                    node: Some("127.0.0.1:7001".into()),
                    up: false,
                    ..NodeSample::default()
                },
            ],
            duration_seconds: 0.0,
        };
        let text = render(&scrape);
        let got = lines(&text);
        for want in [
            "hblock_up{node=\"127.0.0.1:7000\"} 1",
            "hblock_up{node=\"127.0.0.1:7001\"} 0",
            "hblock_acquired_total{node=\"127.0.0.1:7000\"} 1",
            "hblock_lock_held{key=\"k\",node=\"127.0.0.1:7000\"} 1",
            "hblock_lock_holder_info{key=\"k\",owner=\"o\",node=\"127.0.0.1:7000\"} 1",
        ] {
            assert!(got.contains(&want), "{want} missing from\n{text}");
        }
        assert!(!text.contains("hblock_acquired_total{node=\"127.0.0.1:7001\"}"));
    }

    #[test]
    fn every_holder_of_a_semaphore_has_its_series() {
        let mut sem = lock(b"s", "held", Some(b"w1"), 9);
        sem.info.limit = 3;
        sem.info.holders = 2;
        let holding = |owner: &[u8], token| Holding {
            owner: owner.to_vec(),
            token,
            interval: 1000,
            misses: 3,
            missed: 0,
            ttl: 2000,
            beats: 1,
            age: 5,
            bound: 1,
        };
        sem.holders = vec![holding(b"w1", 7), holding(b"w2", 8)];
        let scrape = Scrape {
            nodes: vec![NodeSample {
                up: true,
                locks: vec![sem, lock(b"one", "held", Some(b"o"), 1)],
                ..NodeSample::default()
            }],
            duration_seconds: 0.0,
        };
        let text = render(&scrape);
        let got = lines(&text);
        for want in [
            "hblock_lock_limit{key=\"s\"} 3",
            "hblock_lock_holders{key=\"s\"} 2",
            "hblock_lock_limit{key=\"one\"} 1",
            "hblock_lock_holders{key=\"one\"} 1",
            "hblock_lock_holder_info{key=\"s\",owner=\"w1\"} 1",
            "hblock_lock_holder_info{key=\"s\",owner=\"w2\"} 1",
            "hblock_lock_holder_info{key=\"one\",owner=\"o\"} 1",
        ] {
            assert!(got.contains(&want), "{want} missing from\n{text}");
        }
        assert_eq!(text.matches("hblock_lock_holder_info{").count(), 3);
    }

    #[test]
    fn field_names_become_metric_names() {
        assert_eq!(metric_part("wait_timeouts"), "wait_timeouts");
        assert_eq!(metric_part("Odd-Name.x"), "odd_name_x");
    }
}
