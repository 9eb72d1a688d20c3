//! A real Redis Cluster on loopback: 3 masters and 3 replicas, each loading
//! the module, built with `redis-cli --cluster create`. Every node is a
//! `Server` guard, so all processes and temp dirs go away on drop, also when
//! a test fails.

use super::{eventually, Options, Server};
use redis::Connection;
use std::process::Command;
use std::time::Duration;

pub struct Cluster {
    pub nodes: Vec<Server>,
}

fn cluster_info(c: &mut Connection) -> String {
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query(c)
        .unwrap_or_default()
}

impl Cluster {
    pub fn start() -> Cluster {
        let nodes: Vec<Server> = (0..6)
            .map(|_| Server::with(Options::default().cluster_node()))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster { nodes };
        cluster.wait_ok(Duration::from_secs(30));
        // And every master has its replica linked and in sync.
        let linked = eventually(Duration::from_secs(30), || {
            cluster
                .masters()
                .iter()
                .all(|&m| {
                    let mut c = cluster.nodes[m].conn();
                    let info: String = redis::cmd("INFO")
                        .arg("replication")
                        .query(&mut c)
                        .unwrap_or_default();
                    info.contains("connected_slaves:1") && info.contains("state=online")
                })
                .then_some(())
        });
        assert!(linked.is_some(), "replicas never came online");
        cluster
    }

    /// Waits until every running node says the cluster is ok and all know
    /// the same number of nodes.
    pub fn wait_ok(&self, within: Duration) {
        let ok = eventually(within, || {
            self.nodes
                .iter()
                .filter(|n| n.running())
                .all(|n| {
                    let Ok(mut c) = redis::Client::open(n.url()).and_then(|c| c.get_connection())
                    else {
                        return false;
                    };
                    cluster_info(&mut c).contains("cluster_state:ok")
                })
                .then_some(())
        });
        assert!(ok.is_some(), "cluster never became ok");
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    /// The running nodes' URLs. A stopped node's port is free for any other
    /// process to take (another test's cluster node, say), and a cluster
    /// client takes its whole slot map from the first seed that answers.
    pub fn running_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.running())
            .map(Server::url)
            .collect()
    }

    /// A cluster-aware connection (follows MOVED, refreshes slots), seeded
    /// with the running nodes only.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::builder(self.running_urls())
            .retries(10)
            .build()
            .and_then(|c| c.get_connection())
            .expect("cluster connection")
    }

    /// A new cluster connection over the running nodes, or None while the
    /// cluster cannot give one (during a failover).
    pub fn client_fresh(&self) -> Option<redis::cluster::ClusterConnection> {
        redis::cluster::ClusterClient::builder(self.running_urls())
            .connection_timeout(Duration::from_millis(500))
            .response_timeout(Duration::from_millis(500))
            .build()
            .and_then(|c| c.get_connection())
            .ok()
    }

    /// The index of the running node that serves `key` as master right now.
    pub fn master_of(&self, key: &str) -> usize {
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.running() {
                continue;
            }
            let Ok(mut c) = redis::Client::open(node.url()).and_then(|c| c.get_connection()) else {
                continue;
            };
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).unwrap_or_default();
            let is_master =
                matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master");
            if !is_master {
                continue;
            }
            // A master answers commands on its own slots without a redirect.
            let direct = redis::cmd("EXISTS").arg(key).query::<i64>(&mut c);
            if direct.is_ok() {
                return i;
            }
        }
        panic!("no master serves {key}");
    }

    /// The index of the running node that replicates node `master`.
    pub fn replica_of(&self, master: usize) -> Option<usize> {
        let port = i64::from(self.nodes[master].port);
        (0..self.nodes.len()).find(|&i| {
            if i == master || !self.nodes[i].running() {
                return false;
            }
            let mut c = self.nodes[i].conn();
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).unwrap_or_default();
            matches!(role.get(2), Some(redis::Value::Int(p)) if *p == port)
        })
    }

    /// Waits until every running node routes `key` to node `to`: `to`
    /// answers it without a redirect, every other node with `MOVED` to
    /// `to`'s port. After a failover, until then, a node's slot map (and a
    /// cluster client's, taken from one node) may still name the dead
    /// master. False when that did not happen `within`.
    pub fn wait_routed(&self, key: &str, to: usize, within: Duration) -> bool {
        let moved_to = format!("127.0.0.1:{}", self.nodes[to].port);
        let routed = |i: usize| {
            let conn = redis::Client::open(self.nodes[i].url()).and_then(|c| c.get_connection());
            let Ok(mut c) = conn else {
                return false;
            };
            match redis::cmd("EXISTS").arg(key).query::<i64>(&mut c) {
                Ok(_) => i == to,
                Err(err) => {
                    let moved = err.code() == Some("MOVED");
                    i != to && moved && err.redirect_node().is_some_and(|(a, _)| a == moved_to)
                }
            }
        };
        eventually(within, || {
            (0..self.nodes.len())
                .filter(|&i| self.nodes[i].running())
                .all(routed)
                .then_some(())
        })
        .is_some()
    }

    /// The running masters' indexes.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].running())
            .filter(|&i| {
                let mut c = self.nodes[i].conn();
                let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).unwrap_or_default();
                matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
            })
            .collect()
    }
}

/// One cluster node that serves all 16384 slots by itself (no replicas):
/// enough for what routing does with a command's keys (CROSSSLOT, key
/// lookups before the command runs), at the cost of one process.
pub fn single_node(options: Options) -> Server {
    let node = Server::with(options.cluster_node());
    let mut c = node.conn();
    let _: () = redis::cmd("CLUSTER")
        .arg(&["ADDSLOTSRANGE", "0", "16383"])
        .query(&mut c)
        .expect("CLUSTER ADDSLOTSRANGE");
    let ok = eventually(Duration::from_secs(10), || {
        cluster_info(&mut c)
            .contains("cluster_state:ok")
            .then_some(())
    });
    assert!(ok.is_some(), "the one-node cluster never became ok");
    node
}
