//! The throughput ratios in the configurations users run, side by side in
//! one run: bare (nothing attached: the module propagates nothing), one
//! replica attached, and `appendonly yes` + `appendfsync everysec`. Each
//! mode has its own server; every round measures every command in every
//! mode before the next round starts (interleaved), and the median of the
//! rounds is kept. `redis-benchmark -c 50 -P 16`.
//!
//! Also the bytes one BEAT and one INCR add to the AOF (aof_current_size
//! over N commands): what an AOF'd beat costs beyond the command itself.

use crate::stats::{info_number, Row};
use crate::support::{Options, Server};
use crate::throughput::{prepare, rps};

/// Rounds per mode; the median is kept.
const ROUNDS: usize = 3;
const PIPELINE: usize = 16;

/// The modes, in column order.
const MODES: [&str; 3] = ["bare", "replica", "AOF"];

/// One ratio: hblock's command, the baseline's, the goal (hblock / baseline).
struct Ratio {
    name: &'static str,
    hblock: Vec<String>,
    baseline_name: &'static str,
    baseline: Vec<String>,
    goal: f64,
}

fn ratios(extend: &str, fenced_set: &str) -> Vec<Ratio> {
    let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    vec![
        Ratio {
            name: "BEAT vs INCR",
            hblock: words("HBLOCK.BEAT bench:lock holder 1"),
            baseline_name: "INCR",
            baseline: words("INCR bench:ctr"),
            goal: 0.9,
        },
        Ratio {
            name: "BEAT vs Lua compare-then-PEXPIRE",
            hblock: words("HBLOCK.BEAT bench:lock holder 1"),
            baseline_name: "EVALSHA extend",
            baseline: words(&format!("EVALSHA {extend} 1 bench:str holder 86400000")),
            goal: 2.0,
        },
        Ratio {
            name: "ACQUIRE of a held lock vs SET NX PX",
            hblock: words("HBLOCK.ACQUIRE bench:lock standby"),
            baseline_name: "SET NX PX",
            baseline: words("SET bench:held standby NX PX 30000"),
            goal: 0.9,
        },
        Ratio {
            name: "FENCED SET vs Lua compare-then-SET",
            hblock: words("HBLOCK.FENCED bench:lock holder 1 SET bench:fdata v"),
            baseline_name: "EVALSHA compare-then-SET",
            baseline: words(&format!(
                "EVALSHA {fenced_set} 2 bench:fence bench:fdata holder:1 v"
            )),
            goal: 1.5,
        },
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The servers of the three modes (a replica mode's replica kept alive
/// alongside its master).
struct Servers {
    bare: Server,
    master: Server,
    replica: Server,
    aof: Server,
}

impl Servers {
    fn start() -> Servers {
        let bare = Server::with(Options::default());
        let master = Server::with(Options::default());
        let replica = Server::replica_of(&master);
        crate::support::wait_in_sync(&mut master.conn(), &mut replica.conn());
        let aof = Server::with(
            Options::default()
                .config("appendonly", "yes")
                .config("appendfsync", "everysec"),
        );
        Servers {
            bare,
            master,
            replica,
            aof,
        }
    }

    /// The server a mode's commands go to, in `MODES` order.
    fn of(&self, mode: usize) -> &Server {
        [&self.bare, &self.master, &self.aof][mode]
    }
}

/// The rows, and the side-by-side table (printed after the main one).
pub fn run(quick: bool) -> (Vec<Row>, String) {
    let servers = Servers::start();
    let mut scripts = None;
    for mode in 0..MODES.len() {
        // Same scripts, same SHAs on every server.
        let (extend, _, fenced_set) = prepare(&mut servers.of(mode).conn());
        scripts = Some((extend, fenced_set));
    }
    let (extend, fenced_set) = scripts.expect("three modes");
    let ratios = ratios(&extend, &fenced_set);
    // Every distinct command once per round and mode.
    let mut commands: Vec<&Vec<String>> = Vec::new();
    for r in &ratios {
        for c in [&r.hblock, &r.baseline] {
            if !commands.contains(&c) {
                commands.push(c);
            }
        }
    }
    // Each run long enough that redis-benchmark's millisecond clock does
    // not quantize the rate much (33k requests at -P 16 took ~130 ms);
    // QUICK stays short: 63 runs (7 commands, 3 modes, 3 rounds) of 50k.
    let requests = if quick { 50_000 } else { 400_000 };
    let mut samples = vec![vec![Vec::new(); commands.len()]; MODES.len()];
    for _ in 0..ROUNDS {
        for (mode, per_mode) in samples.iter_mut().enumerate() {
            for (command, per_command) in commands.iter().zip(per_mode.iter_mut()) {
                let args: Vec<&str> = command.iter().map(String::as_str).collect();
                per_command.push(rps(servers.of(mode), requests, PIPELINE, &args));
            }
        }
    }
    let rate = |mode: usize, command: &Vec<String>| {
        let at = commands.iter().position(|c| *c == command).unwrap_or(0);
        median(samples[mode][at].clone())
    };
    let held: Option<String> = redis::cmd("GET")
        .arg("bench:str")
        .query(&mut servers.aof.conn())
        .expect("GET");
    assert_eq!(
        held.as_deref(),
        Some("holder"),
        "the Lua extend's key is alive"
    );
    crate::support::wait_in_sync(&mut servers.master.conn(), &mut servers.replica.conn());
    let same = crate::support::digest(&mut servers.master.conn())
        == crate::support::digest(&mut servers.replica.conn());
    assert!(same, "the replica holds what the master holds");

    let mut rows = Vec::new();
    let mut table = format!(
        "\nratios by mode (redis-benchmark -c 50 -P {PIPELINE}, median of {ROUNDS} interleaved rounds)\n{:<40} {:>8} {:>8} {:>8}  goal\n",
        "ratio", MODES[0], MODES[1], MODES[2]
    );
    for r in &ratios {
        let mut cells = String::new();
        let mut met = true;
        for (mode, mode_name) in MODES.iter().enumerate() {
            let (h, b) = (rate(mode, &r.hblock), rate(mode, &r.baseline));
            cells.push_str(&format!(" {:>8.2}", h / b));
            met &= h / b >= r.goal;
            rows.push(Row {
                name: format!("{} ({mode_name}, -P {PIPELINE}, 50 clients)", r.name),
                unit: "ops/s",
                hblock: h,
                baseline_name: r.baseline_name.into(),
                baseline: b,
                goal: Some((format!(">= {}x", r.goal), h / b >= r.goal)),
            });
        }
        let verdict = if met { "met" } else { "MISSED" };
        table.push_str(&format!("{:<40}{cells}  >= {} {verdict}\n", r.name, r.goal));
    }
    rows.push(aof_bytes(&servers.aof, quick));
    (rows, table)
}

/// Bytes the AOF grows by per BEAT against per INCR.
fn aof_bytes(server: &Server, quick: bool) -> Row {
    let n = if quick { 20_000 } else { 100_000 };
    let per = |args: &[&str]| {
        let mut c = server.conn();
        let before = info_number(&mut c, "persistence", "aof_current_size");
        rps(server, n, PIPELINE, args);
        let after = info_number(&mut c, "persistence", "aof_current_size");
        (after - before) / n as f64
    };
    let beat = per(&["HBLOCK.BEAT", "bench:lock", "holder", "1"]);
    let incr = per(&["INCR", "bench:ctr"]);
    Row {
        name: "AOF bytes per BEAT (appendonly yes, everysec)".into(),
        unit: "bytes",
        hblock: beat,
        baseline_name: "INCR".into(),
        baseline: incr,
        goal: None,
    }
}
