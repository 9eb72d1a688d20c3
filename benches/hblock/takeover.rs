//! Crash takeover: from the holder's last heartbeat to the standby holding the
//! lock, for hblock (a standby blocked in ACQUIRE ... WAIT 0) and for the seed
//! recipe (INCR heartbeat, standby polls GET every interval and takes over
//! with GETSET after `misses` unchanged polls). Same interval and misses.

use crate::stats::{summary, Row};
use crate::support::raw::Raw;
use crate::support::Server;
use std::time::{Duration, Instant};

const INTERVAL_MS: u64 = 20;
const MISSES: u64 = 3;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn hblock_sample(server: &Server, key: &str) -> f64 {
    let (mut holder, mut standby) = (Raw::connect(server.port), Raw::connect(server.port));
    let (interval, misses) = (INTERVAL_MS.to_string(), MISSES.to_string());
    holder.send(&[
        "HBLOCK.ACQUIRE",
        key,
        "holder",
        "INTERVAL",
        &interval,
        "MISSES",
        &misses,
    ]);
    let token = holder.int();
    assert!(token >= 1);
    standby.send(&["HBLOCK.ACQUIRE", key, "standby", "WAIT", "0"]);
    let mut last_beat = Instant::now();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(INTERVAL_MS));
        last_beat = Instant::now();
        holder.send(&["HBLOCK.BEAT", key, "holder", &token.to_string()]);
        holder.int();
    }
    // The holder "crashes": no more beats.
    assert!(standby.int() > token);
    ms(last_beat.elapsed())
}

/// `phase_ms`: when the standby's polls fall within the holder's interval;
/// a real poller is not in step with the holder, so samples spread it.
fn polling_sample(server: &Server, key: &str, phase_ms: u64) -> f64 {
    let mut holder = Raw::connect(server.port);
    assert_eq!(holder.call(&["SET", key, "0"]), "+OK");
    let port = server.port;
    let key_owned = key.to_string();
    let standby = std::thread::spawn(move || {
        let mut raw = Raw::connect(port);
        std::thread::sleep(Duration::from_millis(phase_ms));
        let (mut last, mut unchanged) = (String::new(), 0);
        loop {
            raw.send(&["GET", &key_owned]);
            let _len = raw.line();
            let value = raw.line();
            if value == last {
                unchanged += 1;
            } else {
                (last, unchanged) = (value, 0);
            }
            if unchanged >= MISSES {
                raw.send(&["GETSET", &key_owned, "standby"]);
                let _ = raw.line();
                let _ = raw.line();
                return Instant::now();
            }
            std::thread::sleep(Duration::from_millis(INTERVAL_MS));
        }
    });
    let mut last_beat = Instant::now();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(INTERVAL_MS));
        last_beat = Instant::now();
        holder.int_of(&["INCR", key]);
    }
    let took_over = standby.join().expect("poller");
    ms(took_over.saturating_duration_since(last_beat))
}

pub fn run(server: &Server, quick: bool) -> Vec<Row> {
    let samples = if quick { 10 } else { 40 };
    let lease = (INTERVAL_MS * MISSES) as f64;
    let hblock: Vec<f64> = (0..samples)
        .map(|i| hblock_sample(server, &format!("take:h:{i}")))
        .collect();
    let polling: Vec<f64> = (0..samples)
        .map(|i| polling_sample(server, &format!("take:p:{i}"), (i as u64 * 7) % INTERVAL_MS))
        .collect();
    let (h50, h99, _) = summary(hblock);
    let (p50, p99, _) = summary(polling);
    let label = format!("crash takeover after last beat ({INTERVAL_MS} ms x {MISSES})");
    vec![
        Row {
            name: format!("{label}, p50"),
            unit: "ms",
            hblock: h50,
            baseline_name: "polling recipe".into(),
            baseline: p50,
            goal: None,
        },
        Row {
            name: format!("{label}, p99"),
            unit: "ms",
            hblock: h99,
            baseline_name: "polling recipe".into(),
            baseline: p99,
            goal: Some((
                format!("<= lease + 5 ms = {}", lease + 5.0),
                h99 <= lease + 5.0,
            )),
        },
    ]
}
