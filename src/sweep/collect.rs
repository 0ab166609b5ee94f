//! `advlab sweep collect`: every finished point's result rows (its `out/result.json`, a map or
//! an array of maps) with the point's grid values added, written to `<dir>/rows.json` for
//! report scripts, and grouped by `--by` with the mean and sample standard deviation of every
//! value column over the other keys (seeds, usually): a printed table, CSV, JSON and charts.

use super::{grid, Sweep, Which};
use crate::plot::{Chart, LineChart};
use crate::table::{mean_std, Cell};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// `advlab sweep collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The sweep directory.
    pub dir: PathBuf,
    /// Group by these keys (comma-separated; default: every grid key but `seed`).
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// The columns to average (comma-separated; default: every numeric column that is not a grid key).
    #[arg(long, value_delimiter = ',')]
    pub values: Vec<String>,
    /// The file each point's script writes under out/.
    #[arg(long, default_value = "result.json")]
    pub result: String,
    /// Write the grouped table as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write the grouped table as JSON (an array of rows).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// A chart X:Y: the mean of Y against the --by key X, error bars ± std, one line per value of the other --by keys; written to <dir>/chart_X_Y.png and .svg. Repeatable.
    #[arg(long, value_name = "X:Y")]
    pub chart: Vec<String>,
}

/// A JSON value as a grouping key.
fn key_text(v: Option<&Value>) -> String {
    v.map(grid::label).unwrap_or_default()
}

/// Every finished point's rows, with its grid values added (the row's own value wins), and the
/// points that are finished without a readable result.
fn rows(sweep: &Sweep, result: &str) -> Result<(Vec<Map<String, Value>>, usize)> {
    let mut out = Vec::new();
    let mut finished = 0;
    for (i, point) in sweep.manifest.points.iter().enumerate() {
        let d = sweep.run_dir(Which::Point(i));
        if !d.join("done.json").is_file() {
            continue;
        }
        finished += 1;
        let path = d.join(result);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "point p{i:05} ({}) is done but wrote no {result} (its script should write_json(\"out/{result}\", row))",
                sweep.describe(Which::Point(i))
            )
        })?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
        let found = match value {
            Value::Object(m) => vec![m],
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m),
                    other => bail!("{}: expected an array of maps, found {other}", path.display()),
                })
                .collect::<Result<Vec<_>>>()?,
            other => bail!("{}: expected a map or an array of maps, found {other}", path.display()),
        };
        for mut row in found {
            for (k, v) in point {
                row.entry(k.clone()).or_insert_with(|| v.clone());
            }
            row.entry("point".to_string()).or_insert_with(|| Value::from(i));
            out.push(row);
        }
    }
    Ok((out, finished))
}

/// The grouped table: the `by` keys, then `<v>_mean`, `<v>_std` per value, and `n`.
fn aggregate(rows: &[Map<String, Value>], by: &[String], values: &[String]) -> Result<Vec<Map<String, Value>>> {
    let keys: Vec<Vec<String>> = rows
        .iter()
        .map(|r| by.iter().map(|b| key_text(r.get(b))).collect())
        .collect();
    let mut out = Vec::new();
    for members in crate::table::group(&keys) {
        let first = members.first().and_then(|&i| rows.get(i)).context("an empty group")?;
        let mut m = Map::new();
        for b in by {
            m.insert(b.clone(), first.get(b).cloned().unwrap_or(Value::Null));
        }
        for v in values {
            let xs: Vec<f64> = members
                .iter()
                .filter_map(|&i| rows.get(i).and_then(|r| r.get(v)).and_then(Value::as_f64))
                .collect();
            if xs.is_empty() {
                m.insert(format!("{v}_mean"), Value::Null);
                m.insert(format!("{v}_std"), Value::Null);
                continue;
            }
            let (mean, std) = mean_std(&xs)?;
            m.insert(format!("{v}_mean"), Value::from(mean));
            m.insert(format!("{v}_std"), Value::from(std));
        }
        m.insert("n".into(), Value::from(members.len()));
        out.push(m);
    }
    Ok(out)
}

fn cell(v: Option<&Value>) -> Cell {
    match v {
        Some(Value::Number(n)) if n.is_f64() => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::Null) | None => Cell::Empty,
        Some(v) => Cell::Text(grid::label(v)),
    }
}

/// A chart of `y`'s mean against the by key `x`, one line per value of the other by keys.
fn chart(table: &[Map<String, Value>], by: &[String], x: &str, y: &str) -> Result<Chart> {
    let others: Vec<&String> = by.iter().filter(|b| *b != x).collect();
    let mut xs: Vec<f64> = Vec::new();
    for r in table {
        let v = r
            .get(x)
            .and_then(Value::as_f64)
            .with_context(|| format!("--chart {x}:{y}: `{x}` must be a numeric --by key"))?;
        if !xs.contains(&v) {
            xs.push(v);
        }
    }
    xs.sort_by(f64::total_cmp);
    let names: Vec<String> = table
        .iter()
        .map(|r| {
            others
                .iter()
                .map(|o| format!("{o}={}", key_text(r.get(o.as_str()))))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    let mut errors: Vec<Option<Vec<f64>>> = Vec::new();
    for (r, name) in table.iter().zip(&names) {
        let at = r.get(x).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let Some(j) = xs.iter().position(|v| *v == at) else {
            continue;
        };
        let s = match series.iter().position(|(n, _)| n == name) {
            Some(s) => s,
            None => {
                series.push((name.clone(), vec![f64::NAN; xs.len()]));
                errors.push(Some(vec![0.0; xs.len()]));
                series.len() - 1
            }
        };
        let mean = r.get(&format!("{y}_mean")).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let std = r.get(&format!("{y}_std")).and_then(Value::as_f64).unwrap_or(0.0);
        if let (Some((_, ys)), Some(Some(es))) = (series.get_mut(s), errors.get_mut(s)) {
            if let (Some(a), Some(b)) = (ys.get_mut(j), es.get_mut(j)) {
                *a = mean;
                *b = std;
            }
        }
    }
    if series.len() == 1 {
        if let Some(s) = series.first_mut() {
            s.0 = y.to_string();
        }
    }
    Ok(Chart::Line(LineChart {
        title: format!("{y} against {x} (mean ± std)"),
        x_label: x.to_string(),
        y_label: y.to_string(),
        x: xs,
        series,
        errors,
    }))
}

/// Collect a sweep.
pub fn run(a: &CollectArgs) -> Result<ExitCode> {
    let sweep = Sweep::open(&a.dir)?;
    let (rows, finished) = rows(&sweep, &a.result)?;
    let total = sweep.manifest.points.len();
    if rows.is_empty() {
        bail!(
            "{}: no finished point has results yet ({finished} of {total} points finished)",
            sweep.dir.display()
        );
    }
    let mut columns: Vec<String> = Vec::new();
    for r in &rows {
        for k in r.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let grid_keys = &sweep.manifest.keys;
    let by: Vec<String> = if a.by.is_empty() {
        grid_keys.iter().filter(|k| *k != "seed").cloned().collect()
    } else {
        a.by.clone()
    };
    for b in &by {
        if !columns.contains(b) {
            bail!("--by {b}: no such key (the rows have: {})", columns.join(", "));
        }
    }
    let values: Vec<String> = if a.values.is_empty() {
        columns
            .iter()
            .filter(|c| !by.contains(c) && !grid_keys.contains(c) && c.as_str() != "point")
            .filter(|c| rows.iter().any(|r| r.get(c.as_str()).is_some_and(Value::is_number)))
            .cloned()
            .collect()
    } else {
        a.values.clone()
    };
    for v in &values {
        if !columns.contains(v) {
            bail!("--values {v}: no such column (the rows have: {})", columns.join(", "));
        }
    }
    if values.is_empty() {
        bail!(
            "the rows have no numeric column to average besides the keys (columns: {})",
            columns.join(", ")
        );
    }
    let raw = Value::Array(rows.iter().cloned().map(Value::Object).collect());
    super::write_json(&sweep.dir.join("rows.json"), &raw)?;
    let table = aggregate(&rows, &by, &values)?;
    let mut header: Vec<String> = by.clone();
    for v in &values {
        header.push(format!("{v}_mean"));
        header.push(format!("{v}_std"));
    }
    header.push("n".into());
    let cells: Vec<Vec<Cell>> = table
        .iter()
        .map(|r| header.iter().map(|h| cell(r.get(h))).collect())
        .collect();
    println!(
        "{} of {total} points finished, {} rows; mean and std over {}",
        finished,
        rows.len(),
        {
            // the keys averaged over: not in --by, and with more than one value in the grid
            let points = &sweep.manifest.points;
            let varies = |k: &String| points.iter().any(|p| p.get(k) != points.first().and_then(|f| f.get(k)));
            let over: Vec<&String> = grid_keys.iter().filter(|k| !by.contains(k) && varies(k)).collect();
            if over.is_empty() {
                "nothing (every key that varies is in --by)".to_string()
            } else {
                over.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    );
    println!("{}", crate::table::text(&header, &cells));
    if let Some(path) = &a.csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&header)?;
        for r in &table {
            w.write_record(header.iter().map(|h| match r.get(h) {
                Some(Value::Null) | None => String::new(),
                Some(v) => grid::label(v),
            }))?;
        }
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::output::write_atomic(path, &bytes)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &a.json {
        super::write_json(path, &Value::Array(table.iter().cloned().map(Value::Object).collect()))?;
        println!("wrote {}", path.display());
    }
    for spec in &a.chart {
        let (x, y) = spec
            .split_once(':')
            .with_context(|| format!("--chart {spec}: expected X:Y (a --by key and a value column)"))?;
        if !by.iter().any(|b| b == x) {
            bail!("--chart {spec}: `{x}` is not a --by key ({})", by.join(", "));
        }
        if !values.iter().any(|v| v == y) {
            bail!(
                "--chart {spec}: `{y}` is not an averaged column ({})",
                values.join(", ")
            );
        }
        let c = chart(&table, &by, x, y)?;
        for ext in ["png", "svg"] {
            let path = sweep.dir.join(format!("chart_{x}_{y}.{ext}"));
            c.save(&path)?;
            println!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
