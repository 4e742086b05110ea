//! The `plot` subcommand: reads the JSON lines `loadtest/scaling.sh` writes (herald-load
//! `--json` results, each tagged with the `axis` it varies) and renders one SVG chart per axis,
//! deliveries/s against subscribers or topics on a log scale, plus a Markdown table on stdout.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use serde_json::Value;

use crate::cli::PlotArgs;
use crate::report;

/// The subscriber count whose deliveries/s the issue-5 flatness target (±20 %) is measured from.
const FLAT_REFERENCE: u64 = 100;

/// One measured point.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    x: u64,
    deliveries_per_sec: f64,
    pass: bool,
    run: Value,
}

/// Renders `scaling-<axis>.svg` into `--out-dir` for every axis in the input; `Ok(false)` when a
/// point failed its checks (the charts are still drawn, failed points in red).
pub fn run(args: &PlotArgs) -> Result<bool> {
    let text = fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let axes = parse(&text)?;
    if axes.is_empty() {
        bail!("{}: no runs with an \"axis\" field", args.input.display());
    }
    fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let mut pass = true;
    for (axis, points) in &axes {
        let path = args.out_dir.join(format!("scaling-{axis}.svg"));
        draw(axis, points, &path).with_context(|| format!("cannot draw {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        pass &= points.iter().all(|p| p.pass);
    }
    print!("{}", table(&axes));
    Ok(pass)
}

/// Groups the runs by axis, each sorted by x; the x of a run is its field named like the axis.
fn parse(text: &str) -> Result<BTreeMap<String, Vec<Point>>> {
    let mut axes: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let run: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", n + 1))?;
        let Some(axis) = run["axis"].as_str() else {
            continue;
        };
        let x = run[axis]
            .as_u64()
            .with_context(|| format!("line {}: no integer field {axis:?}", n + 1))?;
        let deliveries_per_sec = run["deliveries_per_sec"]
            .as_f64()
            .with_context(|| format!("line {}: no deliveries_per_sec", n + 1))?;
        let pass = run["pass"].as_bool().unwrap_or(false);
        axes.entry(axis.to_string()).or_default().push(Point {
            x,
            deliveries_per_sec,
            pass,
            run,
        });
    }
    for points in axes.values_mut() {
        points.sort_by_key(|p| p.x);
    }
    Ok(axes)
}

/// The ±20 % band around the reference point, when the axis is subscribers and it was measured.
fn flat_band(axis: &str, points: &[Point]) -> Option<(f64, f64)> {
    if axis != "subscribers" {
        return None;
    }
    let reference = points.iter().find(|p| p.x == FLAT_REFERENCE)?;
    Some((
        reference.deliveries_per_sec * 0.8,
        reference.deliveries_per_sec * 1.2,
    ))
}

fn draw(axis: &str, points: &[Point], path: &Path) -> Result<()> {
    let x_min = points.first().map_or(1, |p| p.x).max(1) as f64;
    let x_max = points.last().map_or(10, |p| p.x).max(2) as f64;
    let band = flat_band(axis, points);
    let y_max = points
        .iter()
        .map(|p| p.deliveries_per_sec)
        .chain(band.map(|(_, high)| high))
        .fold(0.0, f64::max)
        .max(1.0)
        // Headroom above the highest point for the legend.
        * 1.4;
    let x_range = (x_min / 1.5)..(x_max * 1.5);

    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = match axis {
        "subscribers" => "herald fan-out: deliveries/s vs subscribers (1 topic, 1 publisher)",
        "topics" => "herald fan-out: deliveries/s vs topics (10 subscribers each)",
        _ => "herald fan-out: deliveries/s",
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone().log_scale(), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(format!("{axis} (log scale)"))
        .y_desc("deliveries/s")
        .x_label_formatter(&|x| report::int(x.round() as u64))
        .y_label_formatter(&|y| report::rate(*y).trim_end_matches("/s").to_string())
        .draw()?;

    if let Some((low, high)) = band {
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series([low, high].map(|y| {
                PathElement::new([(x_range.start, y), (x_range.end, y)], grey.stroke_width(1))
            }))?
            .label("±20 % of the 100-subscriber value (issue-5 target)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], grey));
    }
    let line = RGBColor(31, 119, 180);
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.x as f64, p.deliveries_per_sec)),
            line.stroke_width(2),
        ))?
        .label("deliveries/s")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], line.stroke_width(2)));
    chart.draw_series(points.iter().map(|p| {
        let color = if p.pass { line } else { RED };
        Circle::new((p.x as f64, p.deliveries_per_sec), 4, color.filled())
    }))?;
    chart.draw_series(points.iter().map(|p| {
        Text::new(
            report::rate(p.deliveries_per_sec),
            (p.x as f64, p.deliveries_per_sec),
            ("sans-serif", 12).into_font(),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One Markdown table per axis: the point, deliveries/s, its ratio to the reference point, the
/// server's CPU per delivery and the delivery checks.
fn table(axes: &BTreeMap<String, Vec<Point>>) -> String {
    let mut out = String::new();
    for (axis, points) in axes {
        let reference = points
            .iter()
            .find(|p| axis == "subscribers" && p.x == FLAT_REFERENCE)
            .or(points.first())
            .map_or(0.0, |p| p.deliveries_per_sec);
        out.push_str(&format!(
            "\n| {axis} | connections | deliveries/s | vs {} | published/s | server CPU ns/delivery | lost / dup / reordered |\n",
            points
                .iter()
                .find(|p| axis == "subscribers" && p.x == FLAT_REFERENCE)
                .or(points.first())
                .map_or("first".to_string(), |p| report::int(p.x)),
        ));
        out.push_str("|---:|---:|---:|---:|---:|---:|---|\n");
        for p in points {
            let num = |key: &str| p.run[key].as_f64();
            let ratio = if reference > 0.0 {
                format!("{:.2}×", p.deliveries_per_sec / reference)
            } else {
                "–".into()
            };
            let checks = format!(
                "{} / {} / {}{}",
                num("lost").unwrap_or(0.0),
                num("duplicated").unwrap_or(0.0),
                num("reordered").unwrap_or(0.0),
                if p.pass { "" } else { " FAIL" },
            );
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                report::int(p.x),
                num("subscribers").map_or("?".into(), |v| report::int(v as u64)),
                report::int(p.deliveries_per_sec.round() as u64),
                ratio,
                num("published_per_sec").map_or("?".into(), |v| report::int(v.round() as u64)),
                num("server_cpu_ns_per_item").map_or("–".into(), |v| format!("{v:.0}")),
                checks,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNS: &str = r#"{"axis":"subscribers","subscribers":1000,"topics":1,"deliveries_per_sec":900000.0,"published_per_sec":900.0,"lost":0,"duplicated":0,"reordered":0,"pass":true}
{"axis":"subscribers","subscribers":100,"topics":1,"deliveries_per_sec":1000000.0,"published_per_sec":10000.0,"lost":0,"duplicated":0,"reordered":0,"pass":true,"server_cpu_ns_per_item":250.0}
{"label":"not a scaling run","deliveries_per_sec":1.0}

{"axis":"topics","subscribers":100,"topics":10,"deliveries_per_sec":500000.0,"lost":2,"duplicated":0,"reordered":0,"pass":false}
"#;

    #[test]
    fn groups_and_sorts_by_axis() {
        let axes = parse(RUNS).unwrap();
        assert_eq!(axes.len(), 2);
        let subs: Vec<u64> = axes["subscribers"].iter().map(|p| p.x).collect();
        assert_eq!(subs, [100, 1000]);
        assert_eq!(axes["topics"][0].x, 10);
        assert!(!axes["topics"][0].pass);
        assert_eq!(
            flat_band("subscribers", &axes["subscribers"]),
            Some((800_000.0, 1_200_000.0))
        );
        assert_eq!(flat_band("topics", &axes["topics"]), None);
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(parse("{not json").is_err());
        assert!(parse(r#"{"axis":"topics","deliveries_per_sec":1.0}"#).is_err());
        assert!(parse(r#"{"axis":"topics","topics":3}"#).is_err());
    }

    #[test]
    fn table_has_ratios_and_failures() {
        let t = table(&parse(RUNS).unwrap());
        assert!(t.contains("| 100 | 100 | 1,000,000 | 1.00× | 10,000 | 250 | 0 / 0 / 0 |"));
        assert!(t.contains("| 1,000 | 1,000 | 900,000 | 0.90× | 900 | – | 0 / 0 / 0 |"));
        assert!(t.contains("| 2 / 0 / 0 FAIL |"));
    }

    #[test]
    fn renders_svg() {
        let dir = std::env::temp_dir().join(format!("herald-plot-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let input = dir.join("runs.jsonl");
        fs::write(&input, RUNS).unwrap();
        let pass = run(&PlotArgs {
            input,
            out_dir: dir.clone(),
        })
        .unwrap();
        assert!(!pass, "a failed point makes the plot fail");
        let svg = fs::read_to_string(dir.join("scaling-subscribers.svg")).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("deliveries/s"));
        assert!(dir.join("scaling-topics.svg").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
