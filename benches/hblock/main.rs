//! `make bench`: hblock against the baselines users would pick, measured on
//! the same server in the same run so the ratios hold on a noisy machine.
//!
//! Starts its own redis-server(s) on loopback (tests/support), prints one
//! table, and writes target/bench/results.json and results.csv.
//! `QUICK=1` runs a short version (under a minute).

use hblock_test_support as support;

mod failover;
mod memory;
mod stats;
mod takeover;
mod throughput;

use stats::Row;
use std::fmt::Write as _;
use support::{Options, Server};

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn main() {
    let quick = std::env::var("QUICK").is_ok_and(|v| v == "1");
    let started = std::time::Instant::now();
    let server = Server::with(Options::default().config("maxclients", "12000"));
    let mut c = server.conn();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut c)
        .expect("INFO");
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let settings = "loopback, redis-benchmark -c 50, appendonly no, save \"\", no replicas";
    println!(
        "hblock bench: redis {version}, {cpus} CPUs, {settings}, {}",
        if quick { "QUICK" } else { "full" }
    );

    let mut rows: Vec<Row> = Vec::new();
    rows.extend(throughput::run(&server, quick));
    rows.extend(failover::run(&server, quick));
    rows.extend(takeover::run(&server, quick));
    drop(server);
    rows.extend(memory::run(quick));

    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<58} {:>6} {:>11} {:>11} {:<24} {:>6}  goal",
        "measure", "unit", "hblock", "baseline", "baseline is", "ratio"
    );
    for r in &rows {
        let goal = r.goal.as_ref().map_or(String::new(), |(g, met)| {
            format!("{g} {}", if *met { "met" } else { "MISSED" })
        });
        let _ = writeln!(
            table,
            "{:<58} {:>6} {:>11} {:>11} {:<24} {:>6}  {goal}",
            r.name,
            r.unit,
            fmt(r.hblock),
            fmt(r.baseline),
            r.baseline_name,
            fmt(r.ratio()),
        );
    }
    print!("{table}");
    println!("total time {:.1?}", started.elapsed());

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let json_rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let num = |v: f64| if v.is_nan() { "null".to_string() } else { format!("{v}") };
            let goal = r.goal.as_ref().map_or("null".into(), |(g, met)| format!("{{\"goal\":\"{g}\",\"met\":{met}}}"));
            format!(
                "{{\"measure\":\"{}\",\"unit\":\"{}\",\"hblock\":{},\"baseline\":{},\"baseline_is\":\"{}\",\"ratio\":{},\"goal\":{goal}}}",
                r.name, r.unit, num(r.hblock), num(r.baseline), r.baseline_name, num(r.ratio())
            )
        })
        .collect();
    let json = format!(
        "{{\"redis_version\":\"{version}\",\"cpus\":{cpus},\"settings\":\"{}\",\"quick\":{quick},\"rows\":[\n  {}\n]}}\n",
        settings.replace('"', "\\\""),
        json_rows.join(",\n  ")
    );
    std::fs::write(dir.join("results.json"), json).expect("results.json");
    let mut csv = String::from("measure,unit,hblock,baseline,baseline_is,ratio,goal,met\n");
    for r in &rows {
        let (goal, met) = r
            .goal
            .as_ref()
            .map_or((String::new(), String::new()), |(g, m)| {
                (g.clone(), m.to_string())
            });
        let _ = writeln!(
            csv,
            "\"{}\",{},{},{},\"{}\",{},\"{goal}\",{met}",
            r.name,
            r.unit,
            r.hblock,
            r.baseline,
            r.baseline_name,
            r.ratio()
        );
    }
    std::fs::write(dir.join("results.csv"), csv).expect("results.csv");
    println!("written: target/bench/results.json, target/bench/results.csv");
}
