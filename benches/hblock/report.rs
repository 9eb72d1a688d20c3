//! The bench's output: the printed table, target/bench/results.json and
//! results.csv.

use crate::stats::Row;
use std::fmt::Write as _;
use std::path::Path;

/// What the rows were measured on.
pub struct Run {
    pub version: String,
    pub cpus: usize,
    pub settings: &'static str,
    pub quick: bool,
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn goal_text(row: &Row) -> String {
    row.goal.as_ref().map_or(String::new(), |(g, met)| {
        format!("{g} {}", if *met { "met" } else { "MISSED" })
    })
}

pub fn table(rows: &[Row]) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<58} {:>6} {:>11} {:>11} {:<24} {:>6}  goal",
        "measure", "unit", "hblock", "baseline", "baseline is", "ratio"
    );
    for r in rows {
        let _ = writeln!(
            table,
            "{:<58} {:>6} {:>11} {:>11} {:<24} {:>6}  {}",
            r.name,
            r.unit,
            fmt(r.hblock),
            fmt(r.baseline),
            r.baseline_name,
            fmt(r.ratio()),
            goal_text(r),
        );
    }
    table
}

/// NaN (not measured) as JSON null.
fn number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into)
}

fn json(run: &Run, rows: &[Row]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "measure": r.name,
                "unit": r.unit,
                "hblock": number(r.hblock),
                "baseline": number(r.baseline),
                "baseline_is": r.baseline_name,
                "ratio": number(r.ratio()),
                "goal": r.goal.as_ref().map(|(g, met)| serde_json::json!({"goal": g, "met": met})),
            })
        })
        .collect();
    serde_json::json!({
        "redis_version": run.version,
        "cpus": run.cpus,
        "settings": run.settings,
        "quick": run.quick,
        "rows": rows,
    })
}

fn csv(rows: &[Row]) -> String {
    let mut csv = String::from("measure,unit,hblock,baseline,baseline_is,ratio,goal,met\n");
    for r in rows {
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
    csv
}

pub fn write(dir: &Path, run: &Run, rows: &[Row]) {
    std::fs::create_dir_all(dir).expect("target/bench");
    let json = serde_json::to_string_pretty(&json(run, rows)).expect("results as JSON");
    std::fs::write(dir.join("results.json"), json + "\n").expect("results.json");
    std::fs::write(dir.join("results.csv"), csv(rows)).expect("results.csv");
}
