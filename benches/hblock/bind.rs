//! BIND: a holder's connection closes (the socket closed, as when its
//! process exits or is killed; or CLIENT KILL), how long until the first
//! waiter reads its token. The baseline is a RELEASE by the holder, measured
//! the same way in the same run.

use crate::failover::latency_row;
use crate::stats::{summary, wait_for_waiters, Row};
use crate::support::raw::Raw;
use crate::support::Server;
use std::time::Instant;

/// How the holder lets go.
#[derive(Clone, Copy)]
enum End {
    Close,
    ClientKill,
    Release,
}

/// Ms from the holder letting go to the waiter's token, `rounds` times.
fn hand_overs(server: &Server, end: End, rounds: usize) -> Vec<f64> {
    let mut c = server.conn();
    let mut control = Raw::connect(server.port);
    let mut waiter = Raw::connect(server.port);
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let key = format!("bind:{}:{round}", end as u8);
        let mut holder = Raw::connect(server.port);
        let id = holder.int_of(&["CLIENT", "ID"]);
        let token = holder.int_of(&[
            "HBLOCK.ACQUIRE",
            &key,
            "h",
            "INTERVAL",
            "600000",
            "BIND",
            "0",
        ]);
        waiter.send(&[
            "HBLOCK.ACQUIRE",
            &key,
            "w",
            "INTERVAL",
            "600000",
            "WAIT",
            "0",
        ]);
        wait_for_waiters(&mut c, &key, 1);
        let start = Instant::now();
        match end {
            End::Close => drop(holder),
            End::ClientKill => control.send(&["CLIENT", "KILL", "ID", &id.to_string()]),
            End::Release => holder.send(&["HBLOCK.RELEASE", &key, "h", &token.to_string()]),
        }
        let granted = waiter.int();
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(granted > token, "the waiter got a newer token");
        if let End::ClientKill = end {
            assert_eq!(control.int(), 1, "killed");
        }
    }
    samples
}

pub fn run(server: &Server, quick: bool) -> Vec<Row> {
    let rounds = if quick { 50 } else { 200 };
    let (b50, b99, _) = summary(hand_overs(server, End::Release, rounds));
    let mut rows = Vec::new();
    for (name, end) in [
        ("connection closed", End::Close),
        ("CLIENT KILL", End::ClientKill),
    ] {
        let stats = summary(hand_overs(server, end, rounds));
        let name = format!("BIND 0: disconnect ({name}) to grant");
        for mut row in latency_row(name, stats, 5.0) {
            row.baseline_name = "RELEASE to grant".into();
            row.baseline = if row.name.ends_with("p50") { b50 } else { b99 };
            rows.push(row);
        }
    }
    rows
}
