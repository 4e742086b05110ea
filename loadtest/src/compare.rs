//! The `report` subcommand: reads JSON lines written by `--json --label …` runs and prints one
//! side-by-side Markdown table, herald next to each peer with the herald/peer ratio.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cli::ReportArgs;
use crate::report;

/// Column order: herald, the build it is compared with (`base`, compare.sh HERALD_BASE), its
/// pub/sub peers, and the bare hyper peer of the `rest` scenario.
const TARGETS: [&str; 5] = ["herald", "base", "nats", "redis", "hello"];

/// A figure to compare: its name, where it is in the JSON, and whether more is better.
struct Metric {
    name: &'static str,
    path: &'static [&'static str],
    higher_is_better: bool,
}

const FANOUT: &[Metric] = &[
    Metric {
        name: "deliveries/s",
        path: &["deliveries_per_sec"],
        higher_is_better: true,
    },
    Metric {
        name: "published/s",
        path: &["published_per_sec"],
        higher_is_better: true,
    },
    Metric {
        name: "p99 µs",
        path: &["latency_us", "p99"],
        higher_is_better: false,
    },
    Metric {
        name: "server CPU ns/delivery",
        path: &["server_cpu_ns_per_item"],
        higher_is_better: false,
    },
];

const LATENCY: &[Metric] = &[
    Metric {
        name: "p50 µs",
        path: &["latency_us", "p50"],
        higher_is_better: false,
    },
    Metric {
        name: "p99 µs",
        path: &["latency_us", "p99"],
        higher_is_better: false,
    },
    Metric {
        name: "p99.9 µs",
        path: &["latency_us", "p99_9"],
        higher_is_better: false,
    },
    Metric {
        name: "max µs",
        path: &["latency_us", "max"],
        higher_is_better: false,
    },
];

const CONNECTIONS: &[Metric] = &[
    Metric {
        name: "connects/s",
        path: &["connects_per_sec"],
        higher_is_better: true,
    },
    Metric {
        name: "server KiB/conn",
        path: &["server_kib_per_connection"],
        higher_is_better: false,
    },
];

const REST: &[Metric] = &[
    Metric {
        name: "requests/s",
        path: &["requests_per_sec"],
        higher_is_better: true,
    },
    Metric {
        name: "p99 µs",
        path: &["latency_us", "p99"],
        higher_is_better: false,
    },
    Metric {
        name: "server CPU ns/request",
        path: &["server_cpu_ns_per_item"],
        higher_is_better: false,
    },
];

/// Prints the table; `Ok(false)` when any run failed its checks.
pub fn run(args: &ReportArgs) -> Result<bool> {
    let mut runs = Vec::new();
    for file in &args.files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", file.display(), n + 1))?;
            runs.push(value);
        }
    }
    print!("{}", table(&runs));
    Ok(runs.iter().all(|r| r["pass"].as_bool().unwrap_or(true)))
}

/// The Markdown table for `runs` (labels in order of first appearance).
pub fn table(runs: &[Value]) -> String {
    let mut labels: Vec<String> = Vec::new();
    let mut by_label: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for run in runs {
        let label = run["label"]
            .as_str()
            .or(run["scenario"].as_str())
            .unwrap_or("?")
            .to_string();
        let target = run["target"].as_str().unwrap_or("?").to_string();
        if !labels.contains(&label) {
            labels.push(label.clone());
        }
        by_label.insert((label, target), run);
    }
    // Columns for the targets that appear, herald first, then a herald/peer ratio per peer.
    let targets: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| *t == "herald" || by_label.keys().any(|(_, target)| target == t))
        .collect();
    let peers = &targets[1..];
    let mut out = String::from("| scenario | metric |");
    for t in &targets {
        out.push_str(&format!(" {t} |"));
    }
    for p in peers {
        out.push_str(&format!(" herald/{p} |"));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(targets.len() + peers.len()));
    out.push('\n');
    let mut failures = Vec::new();
    for label in &labels {
        let cell = |target: &str| by_label.get(&(label.clone(), target.to_string())).copied();
        let scenario = TARGETS
            .iter()
            .find_map(|t| cell(t))
            .and_then(|r| r["scenario"].as_str())
            .unwrap_or("");
        let metrics = match scenario {
            "fanout" => FANOUT,
            "latency" => LATENCY,
            "connections" => CONNECTIONS,
            "rest" => REST,
            _ => &[],
        };
        for target in TARGETS {
            if let Some(run) = cell(target) {
                let closed = run["policy_disconnects"].as_u64().unwrap_or(0);
                let dropped = run["dropped_by_policy"].as_u64().unwrap_or(0);
                if run["pass"].as_bool() != Some(false) && (closed > 0 || dropped > 0) {
                    failures.push(format!(
                        "{label} / {target}: passed, but the server's policy closed {closed} \
                         subscribers and dropped {dropped} messages"
                    ));
                }
                if run["pass"].as_bool() == Some(false) {
                    let why: Vec<&str> = run["failures"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    failures.push(format!("{label} / {target}: {}", why.join("; ")));
                }
            }
        }
        for metric in metrics {
            let values: Vec<Option<f64>> = targets
                .iter()
                .map(|t| cell(t).and_then(|r| lookup(r, metric.path)))
                .collect();
            let shown: Vec<String> = targets
                .iter()
                .zip(&values)
                .map(|(t, v)| {
                    let failed = cell(t).is_some_and(|r| r["pass"].as_bool() == Some(false));
                    match v {
                        Some(v) => format!(
                            "{}{}",
                            report::prefixed(*v, 1),
                            if failed { " ✗" } else { "" }
                        ),
                        None => "–".into(),
                    }
                })
                .collect();
            let ratio = |peer: Option<f64>| match (values[0], peer) {
                (Some(h), Some(p)) if p > 0.0 => {
                    let better = if metric.higher_is_better {
                        h >= p
                    } else {
                        h <= p
                    };
                    format!("{:.2}{}", h / p, if better { "" } else { " (behind)" })
                }
                _ => "–".into(),
            };
            out.push_str(&format!("| {label} | {} |", metric.name));
            for cell in &shown {
                out.push_str(&format!(" {cell} |"));
            }
            for v in &values[1..] {
                out.push_str(&format!(" {} |", ratio(*v)));
            }
            out.push('\n');
        }
    }
    if !failures.is_empty() {
        out.push_str("\n✗ failed checks and policy drops:\n");
        for f in failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

fn lookup(run: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(run, |v, k| v.get(k))?.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn side_by_side_with_ratios() {
        let runs = vec![
            json!({"label":"fanout-1x1000","scenario":"fanout","target":"herald","pass":true,
                   "deliveries_per_sec":2_000_000.0,"published_per_sec":2000.0,"latency_us":{"p99":900.0}}),
            json!({"label":"fanout-1x1000","scenario":"fanout","target":"nats","pass":true,
                   "deliveries_per_sec":1_000_000.0,"published_per_sec":1000.0,"latency_us":{"p99":450.0}}),
            json!({"label":"lat","scenario":"latency","target":"redis","pass":false,"failures":["3 lost"],
                   "latency_us":{"p50":10.0,"p99":20.0,"p99_9":30.0,"max":40.0}}),
        ];
        let t = table(&runs);
        assert!(
            t.contains("| fanout-1x1000 | deliveries/s | 2.00 M | 1.00 M | – | 2.00 | – |"),
            "{t}"
        );
        assert!(
            t.contains("| fanout-1x1000 | p99 µs | 900.0 | 450.0 | – | 2.00 (behind) | – |"),
            "{t}"
        );
        assert!(
            t.contains("| lat | p99 µs | – | – | 20.0 ✗ | – | – |"),
            "{t}"
        );
        assert!(t.contains("lat / redis: 3 lost"), "{t}");
        assert!(
            !t.contains("hello"),
            "no hello column without hello runs: {t}"
        );
    }

    #[test]
    fn rest_against_the_hello_peer() {
        let runs = vec![
            json!({"label":"rest-16","scenario":"rest","target":"herald","pass":true,
                   "requests_per_sec":70_000.0,"latency_us":{"p99":600.0}}),
            json!({"label":"rest-16","scenario":"rest","target":"hello","pass":true,
                   "requests_per_sec":100_000.0,"latency_us":{"p99":300.0}}),
        ];
        let t = table(&runs);
        assert!(
            t.starts_with(
                "| scenario | metric | herald | hello | herald/hello |\n|---|---|---:|---:|---:|\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("| rest-16 | requests/s | 70.0 k | 100.0 k | 0.70 (behind) |"),
            "{t}"
        );
    }
}
