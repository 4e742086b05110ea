//! What a run prints: a table on stdout (or one JSON object with `--json`) and the list of
//! failed checks that makes the exit status non-zero.

use serde_json::{Map, Value};

use crate::cli::OutputArgs;

/// The result of one scenario run.
pub struct Report {
    /// First line of the table, e.g. `fanout → herald ws://127.0.0.1:8080/ws`.
    pub title: String,
    /// Table rows: name, value.
    pub rows: Vec<(String, String)>,
    /// The same figures for `--json` (flat keys, plus nested latency).
    pub json: Map<String, Value>,
    /// Failed checks; empty means pass.
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(title: String) -> Self {
        Self {
            title,
            rows: Vec::new(),
            json: Map::new(),
            failures: Vec::new(),
        }
    }

    pub fn row(&mut self, name: &str, value: impl Into<String>) {
        self.rows.push((name.to_string(), value.into()));
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.json.insert(key.to_string(), value.into());
    }

    /// Records a failed check when `failed`.
    pub fn check(&mut self, failed: bool, what: impl Into<String>) {
        if failed {
            self.failures.push(what.into());
        }
    }

    pub fn pass(&self) -> bool {
        self.failures.is_empty()
    }

    /// Prints the table or the JSON object on stdout.
    pub fn print(mut self, output: &OutputArgs) {
        if output.json {
            if let Some(label) = &output.label {
                self.json.insert("label".into(), label.clone().into());
            }
            self.json.insert("pass".into(), self.pass().into());
            self.json.insert(
                "failures".into(),
                Value::Array(self.failures.iter().cloned().map(Value::from).collect()),
            );
            println!("{}", Value::Object(self.json));
            return;
        }
        println!("{}", self.title);
        let width = self
            .rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (name, value) in &self.rows {
            println!("  {name:<width$}  {value}");
        }
        if self.failures.is_empty() {
            println!("  {:<width$}  PASS", "result");
        } else {
            println!("  {:<width$}  FAIL: {}", "result", self.failures.join("; "));
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with a unit prefix: `12.3 M/s`, `45.6 k/s`, `789/s`.
pub fn rate(per_sec: f64) -> String {
    format!("{}/s", prefixed(per_sec, 0))
}

/// A value with a unit prefix: `1.23 M`, `45.6 k`; below 10,000 with `decimals` decimals.
pub fn prefixed(v: f64, decimals: usize) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.decimals$}")
    }
}

/// Rounds to one decimal for JSON.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1000), "1,000");
        assert_eq!(int(1234567), "1,234,567");
        assert_eq!(rate(12_345_678.0), "12.35 M/s");
        assert_eq!(rate(45_600.0), "45.6 k/s");
        assert_eq!(rate(789.2), "789/s");
    }
}
