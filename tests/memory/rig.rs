//! The server, its clients, and how each way of ending a blocked call is
//! driven 200 clients at a time (see the module's note).

use super::{Blocker, End, Measured, GIVE_UP, LANES, LONG, ROUNDS, TIMEOUTS_PER_LANE};
use crate::support::raw::{Raw, Value};
use crate::support::{config_set, counter, eventually, info_field, Server};
use redis::Connection;
use std::time::{Duration, Instant};

/// A client connection of the test, and its client id.
struct Lane {
    raw: Raw,
    id: i64,
}

impl Lane {
    fn connect(port: u16) -> Lane {
        let mut raw = Raw::connect(port);
        raw.read_timeout(Duration::from_secs(10));
        let id = raw.int_of(&["CLIENT", "ID"]);
        Lane { raw, id }
    }
}

/// A server, the master it turns into a replica of, and the clients.
pub(super) struct Rig {
    server: Server,
    other: Server,
    control: Connection,
    lanes: Vec<Lane>,
    /// Connected clients between batches (the lanes and `control`).
    clients: i64,
    /// The token of `k`'s lease (0: free).
    held: i64,
    /// ACQUIRE grants: owner ("x" or "y") and token of `g:<lane>`.
    grants: Vec<(&'static str, i64)>,
}

fn int(c: &mut Connection, args: &[&str]) -> i64 {
    let mut cmd = redis::cmd(args[0]);
    cmd.arg(&args[1..]);
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn info_int(c: &mut Connection, section: &str, field: &str) -> i64 {
    info_field(c, section, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
}

/// Every reply of a control pipeline is 1 (one client unblocked, killed,
/// one lease released).
fn all_one(replies: &[redis::Value]) {
    assert!(
        replies.iter().all(|r| *r == redis::Value::Int(1)),
        "{replies:?}"
    );
}

fn other_owner(owner: &str) -> &'static str {
    if owner == "x" {
        "y"
    } else {
        "x"
    }
}

impl Rig {
    pub(super) fn start() -> Rig {
        let other = Server::start();
        let server = Server::start();
        let mut control = server.conn();
        control
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        // A master that was a replica keeps a backlog: keep it small, or the
        // writes of the later batches would fill 1 MB of it.
        config_set(&mut control, "repl-backlog-size", "16384");
        // Back to master: no failover delay before ACQUIRE grants again.
        config_set(&mut control, "hblock.failover-delay", "0");
        let mut rig = Rig {
            server,
            other,
            control,
            lanes: Vec::new(),
            clients: 0,
            held: 0,
            grants: Vec::new(),
        };
        rig.connect_lanes();
        rig.clients = info_int(&mut rig.control, "clients", "connected_clients");
        rig
    }

    fn connect_lanes(&mut self) {
        let port = self.server.port;
        self.lanes = (0..LANES).map(|_| Lane::connect(port)).collect();
    }

    /// `k` held by `h` (the holder renews its own lease): its token.
    fn hold(&mut self) -> i64 {
        self.held = int(
            &mut self.control,
            &["HBLOCK.ACQUIRE", "k", "h", "INTERVAL", LONG],
        );
        self.held
    }

    fn used_memory(&mut self) -> i64 {
        info_int(&mut self.control, "memory", "used_memory")
    }

    /// Waits until nobody is blocked and only the rig's clients are connected.
    fn settle(&mut self) {
        let clients = self.clients;
        let c = &mut self.control;
        let settled = eventually(Duration::from_secs(10), || {
            let blocked = info_int(c, "clients", "blocked_clients");
            let connected = info_int(c, "clients", "connected_clients");
            (blocked == 0 && connected == clients).then_some(())
        });
        assert!(
            settled.is_some(),
            "want 0 blocked and {clients} connected clients, have {} and {}",
            info_int(c, "clients", "blocked_clients"),
            info_int(c, "clients", "connected_clients")
        );
    }

    fn wait_blocked(&mut self, n: usize) {
        let c = &mut self.control;
        let blocked = eventually(Duration::from_secs(10), || {
            (info_int(c, "clients", "blocked_clients") == n as i64).then_some(())
        });
        assert!(blocked.is_some(), "never {n} blocked clients");
    }

    /// What a client blocks with, for one lane.
    fn command(&self, blocker: Blocker, end: End, lane: usize) -> Vec<String> {
        let strings = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        match (blocker, end) {
            (Blocker::Watch, End::Timeout) => strings(&[
                "HBLOCK.WATCH",
                "k",
                "SEEN",
                &self.held.to_string(),
                "TIMEOUT",
                "1",
            ]),
            (Blocker::Watch, _) => strings(&["HBLOCK.WATCH", "k", "SEEN", &self.held.to_string()]),
            (Blocker::Acquire, End::Change | End::Flushall | End::KilledWhenWoken) => {
                let (owner, _) = self.grants[lane];
                let key = format!("g:{lane}");
                let next = other_owner(owner);
                strings(&["HBLOCK.ACQUIRE", &key, next, "INTERVAL", LONG, "WAIT", "0"])
            }
            (Blocker::Acquire, End::Timeout) => strings(&["HBLOCK.ACQUIRE", "k", "w", "WAIT", "1"]),
            (Blocker::Acquire, _) => strings(&["HBLOCK.ACQUIRE", "k", "w", "WAIT", "0"]),
        }
    }

    /// Each lane of `lanes` sends its blocking command; all are then blocked.
    fn block(&mut self, lanes: &mut [Lane], blocker: Blocker, end: End) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            lane.raw.send_all(&[self.command(blocker, end, i)]);
        }
        self.wait_blocked(lanes.len());
    }

    /// Sets the keys up for a path.
    fn prepare(&mut self, blocker: Blocker, end: End) {
        let _: () = redis::cmd("FLUSHALL").query(&mut self.control).unwrap();
        self.hold();
        let lane_keys = matches!(end, End::Change | End::Flushall | End::KilledWhenWoken);
        if blocker == Blocker::Acquire && lane_keys {
            self.grant_lane_keys();
        }
    }

    /// `g:<lane>` held by "x" for every lane.
    fn grant_lane_keys(&mut self) {
        let mut pipe = redis::pipe();
        for lane in 0..LANES {
            pipe.cmd("HBLOCK.ACQUIRE")
                .arg(format!("g:{lane}"))
                .arg("x")
                .arg(&["INTERVAL", LONG]);
        }
        let tokens: Vec<i64> = pipe.query(&mut self.control).expect("lane keys");
        self.grants = tokens.into_iter().map(|t| ("x", t)).collect();
    }

    /// Pipelines `commands` on the control connection; their replies.
    fn control_pipeline(&mut self, commands: Vec<Vec<String>>) -> Vec<redis::Value> {
        let mut pipe = redis::pipe();
        for args in commands {
            pipe.cmd(&args[0]).arg(&args[1..]);
        }
        pipe.query(&mut self.control).expect("control pipeline")
    }

    /// Blocks clients and ends them `end`'s way, checking each reply; how
    /// many blocked calls ended.
    fn batch(&mut self, blocker: Blocker, end: End) -> usize {
        match end {
            End::Timeout => self.timeouts(blocker),
            End::Disconnect | End::Kill => self.leave(blocker, end),
            End::KilledWhenWoken => self.killed_when_woken(blocker),
            _ => self.end_lanes(blocker, end),
        }
    }

    /// TIMEOUT 1 / WAIT 1, pipelined on every lane.
    fn timeouts(&mut self, blocker: Blocker) -> usize {
        let command = self.command(blocker, End::Timeout, 0);
        let pipeline = vec![command; TIMEOUTS_PER_LANE];
        for lane in &mut self.lanes {
            lane.raw.send_all(&pipeline);
        }
        for lane in &mut self.lanes {
            for _ in 0..TIMEOUTS_PER_LANE {
                let reply = lane.raw.value();
                match blocker {
                    // The unchanged INFO reply.
                    Blocker::Watch => assert!(matches!(reply, Value::Array(_)), "{reply:?}"),
                    Blocker::Acquire => assert_eq!(reply, Value::Nil),
                }
            }
        }
        LANES * TIMEOUTS_PER_LANE
    }

    /// Clients of their own that block, then close or are killed.
    fn leave(&mut self, blocker: Blocker, end: End) -> usize {
        let port = self.server.port;
        let mut leaving: Vec<Lane> = (0..LANES).map(|_| Lane::connect(port)).collect();
        self.block(&mut leaving, blocker, end);
        if end == End::Kill {
            let kills = leaving
                .iter()
                .map(|l| {
                    vec![
                        "CLIENT".into(),
                        "KILL".into(),
                        "ID".into(),
                        l.id.to_string(),
                    ]
                })
                .collect();
            let replies = self.control_pipeline(kills);
            all_one(&replies);
        }
        drop(leaving);
        self.settle();
        LANES
    }

    /// Clients of their own block; then pipelines wake them (WATCH: RELEASE;
    /// ACQUIRE: each lane key released, so granted) and kill them in the
    /// same event-loop pass. A killed waiter's grant is undone by the module.
    /// Each pipeline stays well under the 16 KB Redis reads at once, so that
    /// a wake-up and its kill are not split between two passes.
    fn killed_when_woken(&mut self, blocker: Blocker) -> usize {
        const PER_WRITE: usize = 50;
        self.prepare(blocker, End::KilledWhenWoken);
        let port = self.server.port;
        let mut leaving: Vec<Lane> = (0..LANES).map(|_| Lane::connect(port)).collect();
        self.block(&mut leaving, blocker, End::KilledWhenWoken);
        let strings = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let released = counter(&mut self.control, "released");
        for (chunk, lanes) in leaving.chunks(PER_WRITE).enumerate() {
            let first = chunk * PER_WRITE;
            let mut pipeline = match blocker {
                Blocker::Watch if chunk == 0 => {
                    vec![strings(&[
                        "HBLOCK.RELEASE",
                        "k",
                        "h",
                        &self.held.to_string(),
                    ])]
                }
                Blocker::Watch => Vec::new(),
                Blocker::Acquire => (first..first + lanes.len())
                    .map(|lane| {
                        let (owner, token) = self.grants[lane];
                        let key = format!("g:{lane}");
                        strings(&["HBLOCK.RELEASE", &key, owner, &token.to_string()])
                    })
                    .collect(),
            };
            for lane in lanes {
                pipeline.push(strings(&["CLIENT", "KILL", "ID", &lane.id.to_string()]));
            }
            all_one(&self.control_pipeline(pipeline));
        }
        drop(leaving);
        self.settle();
        if blocker == Blocker::Acquire {
            // Each lane key: released by its holder, then the grant to the
            // killed waiter undone.
            let want = released + 2 * LANES as u64;
            let c = &mut self.control;
            let undone = eventually(Duration::from_secs(10), || {
                (counter(c, "released") == want).then_some(())
            });
            let now = counter(c, "released");
            assert!(
                undone.is_some(),
                "released {released} -> {now}, want {want}: grants to killed waiters not undone"
            );
        }
        LANES
    }

    /// The lanes block, then one act ends them all.
    fn end_lanes(&mut self, blocker: Blocker, end: End) -> usize {
        let mut lanes = std::mem::take(&mut self.lanes);
        self.block(&mut lanes, blocker, end);
        self.lanes = lanes;
        match end {
            End::Change => self.change(blocker),
            End::Unblock | End::UnblockError => {
                let error = end == End::UnblockError;
                let unblocks = self
                    .lanes
                    .iter()
                    .map(|l| {
                        let mut args = vec!["CLIENT".into(), "UNBLOCK".into(), l.id.to_string()];
                        args.extend(error.then(|| "ERROR".to_string()));
                        args
                    })
                    .collect();
                let replies = self.control_pipeline(unblocks);
                all_one(&replies);
                for lane in &mut self.lanes {
                    let reply = lane.raw.value();
                    match (error, blocker) {
                        (true, _) => assert!(
                            matches!(&reply, Value::Error(e) if e.starts_with("UNBLOCKED")),
                            "{reply:?}"
                        ),
                        (false, Blocker::Watch) => {
                            assert!(matches!(reply, Value::Array(_)), "{reply:?}")
                        }
                        (false, Blocker::Acquire) => assert_eq!(reply, Value::Nil),
                    }
                }
            }
            End::Flushall => {
                let _: () = redis::cmd("FLUSHALL").query(&mut self.control).unwrap();
                for lane in &mut self.lanes {
                    let reply = lane.raw.value();
                    match blocker {
                        // The key is gone: nil.
                        Blocker::Watch => assert_eq!(reply, Value::Nil),
                        // The first (only) waiter of each key gets the new lock.
                        Blocker::Acquire => assert!(matches!(reply, Value::Int(_)), "{reply:?}"),
                    }
                }
                self.prepare(blocker, End::Flushall);
            }
            End::RoleChange => self.role_change(),
            End::Timeout | End::Disconnect | End::Kill | End::KilledWhenWoken => {
                unreachable!("not ended by one act on the lanes")
            }
        }
        LANES
    }

    /// WATCH: `k` is released or granted; ACQUIRE: every lane key is released
    /// by its holder and granted to the lane.
    fn change(&mut self, blocker: Blocker) {
        match blocker {
            Blocker::Watch => {
                if self.held == 0 {
                    self.hold();
                } else {
                    let token = self.held.to_string();
                    int(&mut self.control, &["HBLOCK.RELEASE", "k", "h", &token]);
                    self.held = 0;
                }
                for lane in &mut self.lanes {
                    let reply = lane.raw.value();
                    assert!(matches!(reply, Value::Array(_)), "{reply:?}");
                }
            }
            Blocker::Acquire => {
                let releases = self
                    .grants
                    .iter()
                    .enumerate()
                    .map(|(lane, (owner, token))| {
                        let key = format!("g:{lane}");
                        vec![
                            "HBLOCK.RELEASE".into(),
                            key,
                            owner.to_string(),
                            token.to_string(),
                        ]
                    })
                    .collect();
                let replies = self.control_pipeline(releases);
                all_one(&replies);
                for (lane, grant) in self.lanes.iter_mut().zip(&mut self.grants) {
                    match lane.raw.value() {
                        Value::Int(token) => *grant = (other_owner(grant.0), token),
                        other => panic!("grant: {other:?}"),
                    }
                }
            }
        }
    }

    /// REPLICAOF the other server, which unblocks every client with an
    /// error and closes its connection, then REPLICAOF NO ONE.
    fn role_change(&mut self) {
        let port = self.other.port.to_string();
        let _: () = redis::cmd("REPLICAOF")
            .arg(&["127.0.0.1", &port])
            .query(&mut self.control)
            .unwrap();
        for lane in &mut self.lanes {
            let reply = lane.raw.value();
            assert!(
                matches!(&reply, Value::Error(e) if e.starts_with("UNBLOCKED")),
                "{reply:?}"
            );
        }
        let _: () = redis::cmd("REPLICAOF")
            .arg(&["NO", "ONE"])
            .query(&mut self.control)
            .unwrap();
        self.lanes.clear();
        self.connect_lanes();
        self.settle();
        self.hold();
    }

    /// One path: warm-up, then ROUNDS blocked calls. Growth of
    /// `used_memory` and how long the rounds took.
    pub(super) fn measure(&mut self, blocker: Blocker, end: End) -> Measured {
        self.prepare(blocker, end);
        self.batch(blocker, end);
        self.settle();
        let before = self.used_memory();
        let started = Instant::now();
        let mut rounds = 0;
        while rounds < ROUNDS {
            rounds += self.batch(blocker, end);
            if self.used_memory() - before > GIVE_UP {
                break;
            }
        }
        let took = started.elapsed();
        self.settle();
        let after = self.used_memory();
        Measured {
            end,
            rounds,
            before,
            after,
            took,
        }
    }
}
