//! Outputs: `write_csv`, `write_json`, `line_chart(...).save(...)`, each written atomically
//! with a `.meta.json` sidecar recording the seed, device and resolved parameters.

use super::error::{to_rhai, RResult};
use super::opts::{number, Opts};
use super::{def, Reg, Session};
use crate::plot::LineChart;
use rhai::{Array, Dynamic, Map};

/// Column names in order of first appearance over all rows.
fn columns(rows: &[Map]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !cols.iter().any(|c| c == k.as_str()) {
                cols.push(k.to_string());
            }
        }
    }
    cols
}

fn cell(v: Option<&Dynamic>) -> String {
    match v {
        None => String::new(),
        Some(v) if v.is_unit() => String::new(),
        Some(v) => v.to_string(),
    }
}

fn maps(func: &str, rows: &Array) -> RResult<Vec<Map>> {
    if rows.is_empty() {
        return Err(to_rhai(format!("{func}: there are no rows")));
    }
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            r.clone().try_cast::<Map>().ok_or_else(|| {
                to_rhai(format!(
                    "{func}: row {i} is {}, not a map like #{{ eps: 0.1, acc: 0.9 }}",
                    r.type_name()
                ))
            })
        })
        .collect()
}

fn write_csv(s: &Session, path: &str, rows: &Array) -> RResult<()> {
    let rows = maps("write_csv", rows)?;
    let cols = columns(&rows);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&cols).map_err(to_rhai)?;
    for r in &rows {
        w.write_record(cols.iter().map(|c| cell(r.get(c.as_str()))))
            .map_err(to_rhai)?;
    }
    let bytes = w.into_inner().map_err(to_rhai)?;
    let path = s.resolve_out(path);
    crate::output::write_atomic(&path, &bytes).map_err(to_rhai)?;
    s.provenance.borrow().write_sidecar(&path).map_err(to_rhai)
}

fn write_json(s: &Session, path: &str, value: &Dynamic) -> RResult<()> {
    let json: serde_json::Value = rhai::serde::from_dynamic(value)
        .map_err(|e| to_rhai(format!("write_json: this value cannot be written as JSON ({e})")))?;
    let text = serde_json::to_string_pretty(&json).map_err(to_rhai)?;
    let path = s.resolve_out(path);
    crate::output::write_atomic(&path, text.as_bytes()).map_err(to_rhai)?;
    s.provenance.borrow().write_sidecar(&path).map_err(to_rhai)
}

fn column(rows: &[Map], name: &str, all: &[String]) -> RResult<Vec<f64>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| match r.get(name) {
            None => Err(to_rhai(format!(
                "line_chart: row {i} has no column `{name}`; columns are: {}",
                all.join(", ")
            ))),
            Some(v) => number(v).ok_or_else(|| {
                to_rhai(format!(
                    "line_chart: column `{name}` in row {i} is {}, not a number",
                    v.type_name()
                ))
            }),
        })
        .collect()
}

fn line_chart(rows: &Array, opts: &Map) -> RResult<LineChart> {
    let o = Opts::new("line_chart", opts, &["x", "y", "title", "x_label", "y_label"])?;
    let rows = maps("line_chart", rows)?;
    let all = columns(&rows);
    let x = o
        .string("x")?
        .ok_or_else(|| to_rhai("line_chart: option `x` (the column on the x axis) is required"))?;
    let ys = match o.strings("y")? {
        Some(ys) if !ys.is_empty() => ys,
        _ => all.iter().filter(|c| **c != x).cloned().collect(),
    };
    let series = ys
        .iter()
        .map(|y| Ok((y.clone(), column(&rows, y, &all)?)))
        .collect::<RResult<Vec<_>>>()?;
    Ok(LineChart {
        title: o.string("title")?.unwrap_or_default(),
        x_label: o.string("x_label")?.unwrap_or_else(|| x.clone()),
        y_label: o.string("y_label")?.unwrap_or_default(),
        x: column(&rows, &x, &all)?,
        series,
    })
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<LineChart>("Chart");
    let s = reg.session.clone();
    def!(
        reg,
        "write_csv(path: String, rows: Array)",
        "Write an array of maps as CSV (one column per key), with a .meta.json sidecar (seed, device, parameters).",
        move |p: &str, rows: Array| { write_csv(&s, p, &rows) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "write_json(path: String, value: ?)",
        "Write any value as pretty JSON, with a .meta.json sidecar.",
        move |p: &str, v: Dynamic| { write_json(&s, p, &v) }
    );
    def!(
        reg,
        "line_chart(rows: Array, opts: Map) -> Chart",
        "A line chart of rows: x (column), y (column or array of columns), title, x_label, y_label.",
        |rows: Array, o: Map| { line_chart(&rows, &o) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Chart.save(path: String)",
        "Render to .png or .svg (by extension), with a .meta.json sidecar.",
        move |c: &mut LineChart, p: &str| -> RResult<()> {
            let path = s.resolve_out(p);
            c.save(&path).map_err(to_rhai)?;
            s.provenance.borrow().write_sidecar(&path).map_err(to_rhai)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "out_dir() -> String",
        "The directory that paths starting with out/ are written to (--out).",
        move || s.out_dir.display().to_string()
    );
    let s = reg.session.clone();
    def!(
        reg,
        "default_seed() -> int",
        "The seed used by every call not given one (--seed, default 0).",
        move || s.seed as rhai::INT
    );
}
