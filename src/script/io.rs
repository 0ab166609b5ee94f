//! Outputs: `write_csv`, `write_json`, `line_chart(...).save(...)`, each written atomically
//! with a `.meta.json` sidecar recording the seed, device and resolved parameters.

use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::{number, Opts};
use super::{def, Reg, Session};
use crate::plot::{BarChart, Chart, LineChart, ScatterChart};
use crate::table::Cell;
use candle_core::Tensor;
use rhai::{Array, Dynamic, Map, FLOAT};

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
    // A cluster summary keeps its own column order (a map's keys come sorted).
    let summary = super::SUMMARY_COLUMNS;
    if cols.len() == summary.len() && cols.iter().all(|c| summary.contains(&c.as_str())) {
        return summary.iter().map(|c| c.to_string()).collect();
    }
    cols
}

/// Every name in `wanted` is a column of some row (`all`), or the error of `func` naming it.
fn known_columns(func: &str, wanted: &[String], all: &[String]) -> RResult<()> {
    match wanted.iter().find(|w| !all.contains(w)) {
        Some(w) => Err(to_rhai(format!(
            "{func}: no row has a column `{w}`; columns are: {}",
            all.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The columns `order` names (each one a column of some row), or all of them when it is empty.
fn chosen_columns(func: &str, rows: &[Map], order: &[String]) -> RResult<Vec<String>> {
    let all = columns(rows);
    if order.is_empty() {
        return Ok(all);
    }
    known_columns(func, order, &all)?;
    Ok(order.to_vec())
}

pub(super) fn cell(v: Option<&Dynamic>) -> String {
    match v {
        None => String::new(),
        Some(v) if v.is_unit() => String::new(),
        Some(v) => v.to_string(),
    }
}

pub(super) fn maps(func: &str, rows: &Array) -> RResult<Vec<Map>> {
    if rows.is_empty() {
        return Err(to_rhai(format!("{func}: there are no rows")));
    }
    super::opts::typed(rows, |i, t| {
        format!("{func}: row {i} is {t}, not a map like #{{ eps: 0.1, acc: 0.9 }}")
    })
}

pub(super) fn write_csv(s: &Session, path: &str, rows: &Array, order: &[String]) -> RResult<()> {
    let rows = maps("write_csv", rows)?;
    let cols = chosen_columns("write_csv", &rows, order)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&cols).map_err(to_rhai)?;
    for r in &rows {
        w.write_record(cols.iter().map(|c| cell(r.get(c.as_str()))))
            .map_err(to_rhai)?;
    }
    let bytes = w.into_inner().map_err(to_rhai)?;
    write_with_sidecar(s, path, &bytes)
}

/// `bytes` written atomically to `path` (out/… follows --out), with the run's sidecar beside it.
pub(super) fn write_with_sidecar(s: &Session, path: &str, bytes: &[u8]) -> RResult<()> {
    let path = s.resolve_out(path);
    crate::output::write_atomic(&path, bytes).map_err(to_rhai)?;
    s.provenance.borrow().write_sidecar(&path).map_err(to_rhai)
}

/// `json` written as pretty JSON by [`write_with_sidecar`].
pub(super) fn write_json_value(s: &Session, path: &str, json: &serde_json::Value) -> RResult<()> {
    let text = serde_json::to_string_pretty(json).map_err(to_rhai)?;
    write_with_sidecar(s, path, text.as_bytes())
}

pub(super) fn write_json(s: &Session, path: &str, value: &Dynamic) -> RResult<()> {
    let json: serde_json::Value = rhai::serde::from_dynamic(value)
        .map_err(|e| to_rhai(format!("write_json: this value cannot be written as JSON ({e})")))?;
    let n = non_finite(value);
    if n > 0 {
        let (at, v) = first_non_finite(value).unwrap_or_default();
        eprintln!(
            "warning: write_json {path}: {n} number(s) that are not finite written as null (the first is {v} at `{}`): \
             JSON has no NaN or infinity, and read_json gives null back as ()",
            if at.is_empty() { "the value itself" } else { &at }
        );
    }
    write_json_value(s, path, &json)
}

/// How many floats in `v` (nested arrays and maps included) are not finite.
fn non_finite(v: &Dynamic) -> usize {
    if let Ok(x) = v.as_float() {
        usize::from(!x.is_finite())
    } else if let Some(items) = v.read_lock::<Array>() {
        items.iter().map(non_finite).sum()
    } else if let Some(fields) = v.read_lock::<Map>() {
        fields.values().map(non_finite).sum()
    } else {
        0
    }
}

/// Where the first float of `v` that is not finite is (`.key[i]…`), and its value.
fn first_non_finite(v: &Dynamic) -> Option<(String, FLOAT)> {
    if let Ok(x) = v.as_float() {
        return (!x.is_finite()).then(|| (String::new(), x));
    }
    if let Some(items) = v.read_lock::<Array>() {
        return items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_non_finite(item).map(|(at, x)| (format!("[{i}]{at}"), x)));
    }
    let fields = v.read_lock::<Map>()?;
    fields
        .iter()
        .find_map(|(k, item)| first_non_finite(item).map(|(at, x)| (format!(".{k}{at}"), x)))
}

fn column(func: &str, rows: &[Map], name: &str, all: &[String]) -> RResult<Vec<f64>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| match r.get(name) {
            None => Err(to_rhai(format!(
                "{func}: row {i} has no column `{name}`; columns are: {}",
                all.join(", ")
            ))),
            Some(v) => number(v).ok_or_else(|| {
                to_rhai(format!(
                    "{func}: column `{name}` in row {i} is {}, not a number",
                    v.type_name()
                ))
            }),
        })
        .collect()
}

/// The y series of `rows` and their optional error columns (`err`, same order as `y`).
type Series = (Vec<(String, Vec<f64>)>, Vec<Option<Vec<f64>>>);

fn series(func: &str, rows: &[Map], o: &Opts, x: &str, all: &[String]) -> RResult<Series> {
    let ys = match o.strings("y")? {
        Some(ys) if !ys.is_empty() => ys,
        _ => all.iter().filter(|c| *c != x).cloned().collect(),
    };
    let errs = o.strings("err")?.unwrap_or_default();
    if !errs.is_empty() && errs.len() != ys.len() {
        return Err(to_rhai(format!(
            "{func}: `err` names {} columns but `y` names {}",
            errs.len(),
            ys.len()
        )));
    }
    let values = ys
        .iter()
        .map(|y| Ok((y.clone(), column(func, rows, y, all)?)))
        .collect::<RResult<Vec<_>>>()?;
    let errors = (0..ys.len())
        .map(|i| {
            errs.get(i)
                .filter(|e| !e.is_empty())
                .map(|e| column(func, rows, e, all))
                .transpose()
        })
        .collect::<RResult<Vec<_>>>()?;
    Ok((values, errors))
}

fn line_chart(rows: &Array, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::LINE_CHART, opts)?;
    let rows = maps("line_chart", rows)?;
    let all = columns(&rows);
    let x = o
        .string("x")?
        .ok_or_else(|| to_rhai("line_chart: option `x` (the column on the x axis) is required"))?;
    let (series, errors) = series("line_chart", &rows, &o, &x, &all)?;
    Ok(Chart::Line(LineChart {
        title: o.string("title")?.unwrap_or_default(),
        x_label: o.string("x_label")?.unwrap_or_else(|| x.clone()),
        y_label: o.string("y_label")?.unwrap_or_default(),
        x: column("line_chart", &rows, &x, &all)?,
        series,
        errors,
    }))
}

fn bar_chart(rows: &Array, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::BAR_CHART, opts)?;
    let rows = maps("bar_chart", rows)?;
    let all = columns(&rows);
    let x = o
        .string("x")?
        .ok_or_else(|| to_rhai("bar_chart: option `x` (the column naming each group) is required"))?;
    let groups = rows.iter().map(|r| cell(r.get(x.as_str()))).collect();
    let (series, errors) = series("bar_chart", &rows, &o, &x, &all)?;
    Ok(Chart::Bar(BarChart {
        title: o.string("title")?.unwrap_or_default(),
        y_label: o.string("y_label")?.unwrap_or_default(),
        groups,
        series,
        errors,
    }))
}

pub(super) fn scatter_chart(points: &Tensor, labels: &[i64], opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::SCATTER_CHART, opts)?;
    if !matches!(points.dims(), [_, 2]) {
        return Err(to_rhai(format!(
            "scatter_chart: expected (N, 2) points, got shape {:?}",
            points.dims()
        )));
    }
    let v = points
        .to_dtype(candle_core::DType::F64)
        .and_then(|t| t.to_vec2::<f64>())
        .map_err(to_rhai)?;
    if v.len() != labels.len() {
        return Err(to_rhai(format!(
            "scatter_chart: {} points but {} labels",
            v.len(),
            labels.len()
        )));
    }
    Ok(Chart::Scatter(ScatterChart {
        title: o.string("title")?.unwrap_or_default(),
        points: v.iter().filter_map(|p| Some((*p.first()?, *p.get(1)?))).collect(),
        labels: labels.to_vec(),
        highlight: o.usize("highlight")?.map(|h| h as i64),
    }))
}

/// Rows grouped by the `by` columns, with the mean and sample standard deviation of each
/// `values` column (`<v>_mean`, `<v>_std`) and the group size `n`, in order of first appearance.
fn aggregate(rows: &Array, opts: &Map) -> RResult<Array> {
    let o = Opts::new(&keys::AGGREGATE, opts)?;
    let rows = maps("aggregate", rows)?;
    let all = columns(&rows);
    let by = o.strings("by")?.unwrap_or_default();
    let values = o
        .strings("values")?
        .ok_or_else(|| to_rhai("aggregate: option `values` (columns to average) is required"))?;
    known_columns("aggregate", &by, &all)?;
    let keys: Vec<Vec<String>> = rows
        .iter()
        .map(|r| by.iter().map(|b| cell(r.get(b.as_str()))).collect())
        .collect();
    let mut out = Array::new();
    for members in crate::table::group(&keys) {
        let mut m = Map::new();
        let owned: Vec<Map> = members.iter().filter_map(|&i| rows.get(i).cloned()).collect();
        for b in &by {
            m.insert(
                b.into(),
                owned
                    .first()
                    .and_then(|r| r.get(b.as_str()))
                    .cloned()
                    .unwrap_or(Dynamic::UNIT),
            );
        }
        for v in &values {
            let xs = column("aggregate", &owned, v, &all)?;
            let (mean, std) = crate::table::mean_std(&xs).map_err(|e| to_rhai(format!("aggregate: {e}")))?;
            m.insert(format!("{v}_mean").into(), mean.into());
            m.insert(format!("{v}_std").into(), std.into());
        }
        m.insert("n".into(), (members.len() as rhai::INT).into());
        out.push(m.into());
    }
    Ok(out)
}

/// A script value as a table cell.
fn table_cell(v: Option<&Dynamic>) -> Cell {
    match v {
        Some(d) if d.is_float() => Cell::Float(d.as_float().unwrap_or(f64::NAN)),
        Some(d) if !d.is_unit() => Cell::Text(d.to_string()),
        _ => Cell::Empty,
    }
}

/// An aligned text table of `rows` (floats to 3 decimals), columns in the given order (all of
/// them, in order of first appearance, when `order` is empty).
pub(crate) fn table(rows: &Array, order: &[String]) -> RResult<String> {
    let rows = maps("print_table", rows)?;
    let cols = chosen_columns("print_table", &rows, order)?;
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| table_cell(r.get(c.as_str()))).collect())
        .collect();
    Ok(crate::table::text(&cols, &cells))
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<Chart>("Chart");
    let s = reg.session.clone();
    def!(
        reg,
        "write_csv(path: String, rows: Array)",
        "Write an array of maps as CSV (one column per key), with a .meta.json sidecar (seed, device, parameters).",
        move |p: &str, rows: Array| { write_csv(&s, p, &rows, &[]) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "write_csv(path: String, rows: Array, columns: Array)",
        "Write the given columns of rows as CSV, in that order.",
        move |p: &str, rows: Array, cols: Array| {
            let cols: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
            write_csv(&s, p, &rows, &cols)
        }
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
        "A line chart of rows: x (column), y (column or array of columns), err (± columns for error bars), title, x_label, y_label.",
        |rows: Array, o: Map| { line_chart(&rows, &o) }
    );
    def!(reg, "bar_chart(rows: Array, opts: Map) -> Chart", "A grouped bar chart: x (the column naming each group), y (columns, one bar each), err (± columns), title, y_label.", |rows: Array, o: Map| {
        bar_chart(&rows, &o)
    });
    def!(reg, "scatter_chart(points: Tensor, labels: Array, opts: Map) -> Chart", "(N, 2) points coloured by integer labels (-1 = noise): title, highlight (a label drawn on top, the rest faded).", |p: Tensor, l: Array, o: Map| -> RResult<Chart> {
        let labels = l.iter().map(|v| v.as_int().map_err(|_| to_rhai(format!("scatter_chart: labels must be integers, got {}", v.type_name())))).collect::<RResult<Vec<_>>>()?;
        scatter_chart(&p, &labels, &o)
    });
    def!(
        reg,
        "scatter_chart(points: Tensor, labels: Tensor, opts: Map) -> Chart",
        "(N, 2) points coloured by the labels in a tensor (e.g. Dataset.labels()).",
        |p: Tensor, l: Tensor, o: Map| -> RResult<Chart> {
            let labels: Vec<i64> = l
                .to_dtype(candle_core::DType::I64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<i64>())
                .map_err(to_rhai)?;
            scatter_chart(&p, &labels, &o)
        }
    );
    def!(reg, "aggregate(rows: Array, opts: Map) -> Array", "Group rows by the `by` columns; mean and standard deviation (<v>_mean, <v>_std) of the `values` columns, and n.", |rows: Array, o: Map| {
        aggregate(&rows, &o)
    });
    def!(
        reg,
        "print_table(rows: Array)",
        "Print rows as an aligned table (floats to 3 decimals).",
        |rows: Array| -> RResult<()> {
            println!("{}", table(&rows, &[])?);
            Ok(())
        }
    );
    def!(
        reg,
        "print_table(rows: Array, columns: Array)",
        "Print the given columns of rows, in that order, as an aligned table.",
        |rows: Array, cols: Array| -> RResult<()> {
            let cols: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
            println!("{}", table(&rows, &cols)?);
            Ok(())
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "file_exists(path: String) -> bool",
        "Whether a file exists (out/… paths follow --out): lets a sweep resume.",
        move |p: &str| s.resolve_out(p).is_file()
    );
    let s = reg.session.clone();
    def!(
        reg,
        "read_json(path: String) -> ?",
        "Read a JSON file written by write_json (out/… paths follow --out).",
        move |p: &str| -> RResult<Dynamic> {
            let path = s.resolve_out(p);
            let text =
                std::fs::read_to_string(&path).map_err(|e| to_rhai(format!("cannot read {}: {e}", path.display())))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| to_rhai(format!("{}: not JSON ({e})", path.display())))?;
            rhai::serde::to_dynamic(v)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Chart.save(path: String)",
        "Render to .png or .svg (by extension), with a .meta.json sidecar.",
        move |c: &mut Chart, p: &str| -> RResult<()> {
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
