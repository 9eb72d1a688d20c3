//! `make bench`: hblock against the baselines users would pick, measured on
//! the same server in the same run so the ratios hold on a noisy machine.
//!
//! Starts its own redis-server(s) on loopback (tests/support), prints one
//! table, and writes target/bench/results.json and results.csv.
//! `QUICK=1` runs a short version (under 30 s); `FULL=1` adds 10M locks.

use hblock_test_support as support;

mod bind;
mod exporter;
mod failover;
mod ls;
mod memory;
mod modes;
mod permits;
mod report;
mod stats;
mod takeover;
mod throughput;
mod watch;

use stats::Row;
use support::{Options, Server};

fn main() {
    let quick = std::env::var("QUICK").is_ok_and(|v| v == "1");
    let full = std::env::var("FULL").is_ok_and(|v| v == "1");
    let started = std::time::Instant::now();
    let server = Server::with(Options::default().config("maxclients", "12000"));
    let version = support::info_field(&mut server.conn(), "server", "redis_version")
        .unwrap_or_else(|| "?".into());
    let run = report::Run {
        version,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        settings: "loopback, redis-benchmark -c 50, appendonly no, save \"\", no replicas",
        quick,
    };
    println!(
        "hblock bench: redis {}, {} CPUs, {}, {}",
        run.version,
        run.cpus,
        run.settings,
        if quick { "QUICK" } else { "full" }
    );

    // ONLY=memory,watch runs just those groups (while working on one).
    let only = std::env::var("ONLY").unwrap_or_default();
    let wanted = |group: &str| only.is_empty() || only.split(',').any(|g| g == group);
    let mut rows: Vec<Row> = Vec::new();
    if wanted("throughput") {
        rows.extend(throughput::run(&server, quick));
    }
    if wanted("failover") {
        rows.extend(failover::run(&server, quick));
    }
    if wanted("takeover") {
        rows.extend(takeover::run(&server, quick));
    }
    if wanted("bind") {
        rows.extend(bind::run(&server, quick));
    }
    if wanted("watch") {
        rows.extend(watch::run(&server, quick));
    }
    if wanted("permits") {
        rows.extend(permits::run(&server, quick));
    }
    if wanted("ls") {
        rows.extend(ls::run(quick));
    }
    // bare / replica / AOF side by side (`replica` is its old name).
    let mut by_mode = String::new();
    if wanted("modes") || wanted("replica") {
        let (mode_rows, table) = modes::run(quick);
        rows.extend(mode_rows);
        by_mode = table;
    }
    drop(server);
    if wanted("exporter") {
        rows.extend(exporter::run(quick));
    }
    if wanted("memory") {
        rows.extend(memory::run(quick, full));
    }

    print!("{}", report::table(&rows));
    print!("{by_mode}");
    println!("total time {:.1?}", started.elapsed());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    report::write(&dir, &run, &rows);
    println!("written: target/bench/results.json, target/bench/results.csv");
}
