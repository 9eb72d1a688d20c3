//! The operations torture test: clients hold, beat, wait and release while
//! the operator pauses, fails over, saves, rewrites, reloads, restarts the
//! replica and shuts the master down with a lagging replica. Afterwards no
//! server died, no reply was missing or out of order, replica and master
//! hold the same data, and no token of a key was handed out twice.
//!
//! `HBLOCK_TORTURE_SECS` (default 20) sets how long the operator loop runs.

use crate::support::cluster::Cluster;
use crate::support::rng::Rng;
use crate::support::{digest, eventually, info_field, wait_in_sync, Options, Server};
use redis::{Connection, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 200;
const LOCKS: u64 = 50;

struct Shared {
    urls: Mutex<Vec<String>>,
    master: AtomicUsize,
    stop: AtomicBool,
    grants: Mutex<Vec<(u64, i64)>>,
    bad: Mutex<Vec<String>>,
    ops: AtomicUsize,
}

fn signal(server: &Server, sig: &str) {
    if let Some(pid) = server.pid() {
        let _ = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status();
    }
}

/// An error a client may meet while the server is operated on; anything
/// else (or a reply of the wrong kind) is a bug.
fn expected_error(err: &redis::RedisError) -> bool {
    matches!(
        err.code(),
        Some("READONLY" | "UNBLOCKED" | "NOTHELD" | "LOADING" | "MASTERDOWN")
    ) || err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
}

fn connect(shared: &Shared) -> Option<Connection> {
    let url = {
        let urls = shared.urls.lock().ok()?;
        urls.get(shared.master.load(Ordering::SeqCst))?.clone()
    };
    let conn = redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    Some(conn)
}

impl Shared {
    /// Records a reply that no operation explains; Err(false) ends the round.
    fn bug<T>(&self, what: String) -> Result<T, bool> {
        if let Ok(mut bad) = self.bad.lock() {
            bad.push(what);
        }
        Err(false)
    }

    /// A reply, or Err(true) (new connection) for an error the operations
    /// explain, Err(false) for NOTHELD (the lease lapsed) or a bug.
    fn check(&self, r: redis::RedisResult<Value>, what: &str) -> Result<Value, bool> {
        match r {
            Ok(v) => Ok(v),
            Err(e) if expected_error(&e) => Err(!matches!(e.code(), Some("NOTHELD"))),
            Err(e) => self.bug(format!("{what}: {e}")),
        }
    }
}

/// One client's round: acquire (maybe waiting), beat a few times, release
/// or let the lease lapse; then an ECHO proves the replies are in order.
/// Err(true) asks for a new connection; Err(false) recorded a bug.
fn round(c: &mut Connection, rng: &mut Rng, me: usize, shared: &Shared) -> Result<(), bool> {
    let key = rng.below(LOCKS);
    let name = format!("t:{key}");
    // A fresh owner per round: a holder's re-ACQUIRE of its own live lease
    // answers the same token by design, which is not a second grant.
    let owner = format!("c{me}-{}", rng.below(u64::MAX));
    let interval = 30 + rng.below(200);
    let wait = 1 + rng.below(300);
    let reply = redis::cmd("HBLOCK.ACQUIRE")
        .arg(&name)
        .arg(&owner)
        .arg(&[
            "INTERVAL",
            &interval.to_string(),
            "MISSES",
            "1",
            "WAIT",
            &wait.to_string(),
        ])
        .query::<Value>(c);
    match shared.check(reply, "ACQUIRE")? {
        Value::Int(token) => {
            if let Ok(mut grants) = shared.grants.lock() {
                grants.push((key, token));
            }
            hold(c, rng, shared, (&name, &owner, token), interval)?;
        }
        Value::Nil => {}
        other => return shared.bug(format!("ACQUIRE answered {other:?}")),
    }
    let tag = format!("{me}:{}", rng.below(u64::MAX));
    match shared.check(redis::cmd("ECHO").arg(&tag).query::<Value>(c), "ECHO")? {
        Value::BulkString(b) if b == tag.as_bytes() => Ok(()),
        other => shared.bug(format!("ECHO {tag} answered {other:?}")),
    }
}

/// Beats a granted lease a few times, then releases it or lets it lapse.
fn hold(
    c: &mut Connection,
    rng: &mut Rng,
    shared: &Shared,
    (name, owner, token): (&str, &str, i64),
    interval: u64,
) -> Result<(), bool> {
    for _ in 0..rng.below(3) {
        std::thread::sleep(Duration::from_millis(interval / 2));
        let beat = redis::cmd("HBLOCK.BEAT")
            .arg(name)
            .arg(owner)
            .arg(token)
            .query::<Value>(c);
        match shared.check(beat, "BEAT") {
            Ok(Value::Int(_)) => {}
            Ok(other) => return shared.bug(format!("BEAT answered {other:?}")),
            Err(true) => return Err(true),
            Err(false) => break, // NOTHELD: it lapsed
        }
    }
    if rng.below(2) == 0 {
        let rel = redis::cmd("HBLOCK.RELEASE")
            .arg(name)
            .arg(owner)
            .arg(token)
            .query::<Value>(c);
        if !matches!(shared.check(rel, "RELEASE")?, Value::Int(0 | 1)) {
            return shared.bug("RELEASE answered neither 0 nor 1".into());
        }
    }
    Ok(())
}

fn client(me: usize, shared: Arc<Shared>) {
    let mut rng = Rng::new((me as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut conn: Option<Connection> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(c) = conn.as_mut() else {
            conn = connect(&shared);
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        };
        match round(c, &mut rng, me, &shared) {
            Ok(()) => {
                shared.ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => conn = None,
        }
    }
}

/// Both servers: AOF on, a short shutdown wait for replicas, RDB saves.
fn server_options() -> Options {
    Options::default()
        .config("appendonly", "yes")
        .config("shutdown-timeout", "1")
        .config("save", "3600 1")
}

fn replica_options(master_port: u16) -> Options {
    server_options().config("replicaof", &format!("127.0.0.1 {master_port}"))
}

/// FAILOVER to the replica, as an operator would: once it is in sync.
fn fail_over(servers: &mut [Server; 2], shared: &Shared, m: usize) {
    let r = 1 - m;
    let mut mc = servers[m].conn();
    wait_in_sync(&mut mc, &mut servers[r].conn());
    let _: () = redis::cmd("FAILOVER").query(&mut mc).expect("FAILOVER");
    let mut rc = servers[r].conn();
    let promoted = eventually(Duration::from_secs(15), || {
        (info_field(&mut rc, "replication", "role")? == "master").then_some(())
    });
    assert!(promoted.is_some(), "FAILOVER did not finish");
    shared.master.store(r, Ordering::SeqCst);
}

/// SHUTDOWN while the replica is stopped: writes pause while the master
/// waits for it; then the master starts again from its files.
fn shut_down_lagging(servers: &mut [Server; 2], m: usize) {
    let r = 1 - m;
    signal(&servers[r], "-STOP");
    let _ = redis::cmd("SHUTDOWN").query::<Value>(&mut servers[m].conn());
    let status = servers[m].wait_exit(Duration::from_secs(15));
    signal(&servers[r], "-CONT");
    let status = status.expect("master did not exit after SHUTDOWN");
    assert!(
        status.success(),
        "SHUTDOWN exited {status:?}\n{}",
        servers[m].log()
    );
    servers[m].crash_and_restart_with(server_options());
}

/// One operator step (of seven) on the current master `m`; returns its name.
fn operation(servers: &mut [Server; 2], shared: &Shared, step: usize) -> &'static str {
    let m = shared.master.load(Ordering::SeqCst);
    let mut mc = servers[m].conn();
    let mut run = |cmd: &mut redis::Cmd| {
        cmd.query::<Value>(&mut mc).expect("operator command");
    };
    match step % 7 {
        0 => {
            run(redis::cmd("CLIENT").arg("PAUSE").arg(300).arg("WRITE"));
            "CLIENT PAUSE WRITE"
        }
        1 => {
            fail_over(servers, shared, m);
            "FAILOVER"
        }
        2 => {
            run(redis::cmd("BGSAVE").arg("SCHEDULE"));
            "BGSAVE"
        }
        3 => {
            run(&mut redis::cmd("BGREWRITEAOF"));
            "BGREWRITEAOF"
        }
        4 => {
            run(redis::cmd("DEBUG").arg("RELOAD"));
            "DEBUG RELOAD"
        }
        5 => {
            let master_port = servers[m].port;
            servers[1 - m].crash_and_restart_with(replica_options(master_port));
            "replica kill -9, restart from its AOF"
        }
        _ => {
            shut_down_lagging(servers, m);
            "SHUTDOWN with a lagging replica, restart"
        }
    }
}

/// The operator: each step, then a short breath for the clients.
fn operate(servers: &mut [Server; 2], shared: &Shared, until: Instant) -> Vec<&'static str> {
    // HBLOCK_TORTURE_STEPS=1,4 runs only those steps (to find which one breaks).
    let only: Option<Vec<usize>> = std::env::var("HBLOCK_TORTURE_STEPS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect());
    let mut done = Vec::new();
    let mut step = 0usize;
    while Instant::now() < until {
        if only.as_ref().is_none_or(|only| only.contains(&(step % 7))) {
            done.push(operation(servers, shared, step));
            std::thread::sleep(Duration::from_millis(300));
        }
        step += 1;
    }
    done
}

/// After the run: no unexplained reply, no token granted twice, every step
/// ran, and the replica holds the master's data.
fn check_outcome(servers: &[Server; 2], shared: &Shared, steps: &[&str]) {
    let grants = shared.grants.lock().map(|g| g.clone()).unwrap_or_default();
    eprintln!(
        "torture: {} operator steps, {} client rounds, {} grants",
        steps.len(),
        shared.ops.load(Ordering::Relaxed),
        grants.len()
    );
    let bad = shared.bad.lock().map(|b| b.clone()).unwrap_or_default();
    assert!(
        bad.is_empty(),
        "unexpected replies: {:?}",
        &bad[..bad.len().min(10)]
    );
    let distinct: HashSet<_> = grants.iter().copied().collect();
    assert_eq!(distinct.len(), grants.len(), "a token was granted twice");
    assert!(
        steps.len() >= 7,
        "every operation ran at least once: {steps:?}"
    );
    let m = shared.master.load(Ordering::SeqCst);
    let (mut mc, mut rc) = (servers[m].conn(), servers[1 - m].conn());
    let equal = eventually(Duration::from_secs(10), || {
        wait_in_sync(&mut mc, &mut rc);
        (digest(&mut mc) == digest(&mut rc)).then_some(())
    });
    assert!(
        equal.is_some(),
        "replica and master differ after the torture"
    );
}

#[test]
fn clients_ride_out_pause_failover_save_reload_restart_and_shutdown() {
    let secs: u64 = std::env::var("HBLOCK_TORTURE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let master = Server::with(server_options());
    let replica = Server::with(replica_options(master.port));
    let mut servers = [master, replica];
    wait_in_sync(&mut servers[0].conn(), &mut servers[1].conn());
    let shared = Arc::new(Shared {
        urls: Mutex::new(servers.iter().map(Server::url).collect()),
        master: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        grants: Mutex::new(Vec::new()),
        bad: Mutex::new(Vec::new()),
        ops: AtomicUsize::new(0),
    });
    let threads: Vec<_> = (0..CLIENTS)
        .map(|me| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || client(me, shared))
        })
        .collect();
    let steps = operate(
        &mut servers,
        &shared,
        Instant::now() + Duration::from_secs(secs),
    );
    shared.stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("client thread");
    }
    check_outcome(&servers, &shared, &steps);
}

#[test]
fn cluster_failover_with_lapsing_leases_keeps_every_node_up() {
    let cluster = Cluster::start();
    // Grants right after each failover: no failover delay here.
    for node in &cluster.nodes {
        crate::support::config_set(&mut node.conn(), "hblock.failover-delay", "0");
    }
    for round in 0..2 {
        // 600 leases spread over the three masters by their slots, running
        // out one after another over the next 600 ms or so.
        let mut c = cluster.client();
        for i in 0..600u64 {
            let interval = (20 + i).to_string();
            let token: i64 = redis::cmd("HBLOCK.ACQUIRE")
                .arg(format!("lapse:{round}:{i}"))
                .arg("o")
                .arg(&["INTERVAL", &interval, "MISSES", "1"])
                .query(&mut c)
                .expect("ACQUIRE through the cluster client");
            assert!(token >= 1);
        }
        // Every replica takes over from its master while leases lapse.
        let replicas: Vec<usize> = (0..cluster.nodes.len())
            .filter(|i| !cluster.masters().contains(i))
            .collect();
        for replica in replicas {
            fail_over_replica(&cluster, replica, round);
        }
        cluster.wait_ok(Duration::from_secs(15));
    }
    // Server guards assert on drop that no node died.
}

/// CLUSTER FAILOVER on `replica`, once its master knows it and it is in sync.
fn fail_over_replica(cluster: &Cluster, replica: usize, round: usize) {
    let mut c = cluster.nodes[replica].conn();
    let master = eventually(Duration::from_secs(15), || {
        let port: u16 = info_field(&mut c, "replication", "master_port")?
            .parse()
            .ok()?;
        cluster.nodes.iter().position(|n| n.port == port)
    })
    .expect("the replica names its master");
    let mut mc = cluster.nodes[master].conn();
    wait_in_sync(&mut mc, &mut c);
    let myid = |c: &mut Connection| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(c)
            .expect("CLUSTER MYID")
    };
    let (me, master_id) = (myid(&mut c), myid(&mut mc));
    let known = eventually(Duration::from_secs(15), || {
        let replicas: Vec<String> = redis::cmd("CLUSTER")
            .arg("REPLICAS")
            .arg(&master_id)
            .query(&mut mc)
            .ok()?;
        replicas
            .iter()
            .any(|line| line.starts_with(&me))
            .then_some(())
    });
    assert!(
        known.is_some(),
        "round {round}: the master never listed replica {replica}"
    );
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query(&mut c)
        .expect("CLUSTER FAILOVER");
    let promoted = eventually(Duration::from_secs(15), || {
        (info_field(&mut c, "replication", "role")? == "master").then_some(())
    });
    assert!(
        promoted.is_some(),
        "round {round}: CLUSTER FAILOVER did not finish"
    );
}
