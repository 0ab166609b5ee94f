//! The grid of a sweep: `--grid name=a,b,c` products (values as Rhai literals, integer ranges
//! `1..10`, float ranges `0.1:0.5:0.1`) and `--grid-file` lists of points, expanded into the
//! points that each become one `advlab run`.

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// The most points one sweep may have (a grid beyond this is a typo, not an experiment).
pub const MAX_POINTS: usize = 100_000;

/// Argument names the sweep passes to every point itself.
pub const RESERVED: &[&str] = &["sweep_dir", "point", "setup"];

/// One point: its grid values, in the order the keys were given.
pub type Point = Map<String, Value>;

/// One `--grid` axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub name: String,
    pub values: Vec<Value>,
}

fn check_name(name: &str, what: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        bail!("{what}: `{name}` is not a name (letters, digits, _; not starting with a digit)");
    }
    if RESERVED.contains(&name) {
        bail!(
            "{what}: `{name}` is reserved (the sweep passes {} to every point itself)",
            RESERVED.join(", ")
        );
    }
    Ok(())
}

/// Split `s` at the commas outside quotes and brackets.
fn split_items(s: &str) -> Result<Vec<String>> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        if let Some(q) = quote {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => {
                quote = Some(c);
                cur.push(c);
            }
            '[' | '(' | '{' => {
                depth += 1;
                cur.push(c);
            }
            ']' | ')' | '}' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quote.is_some() {
        bail!("a quoted value is not closed");
    }
    if depth != 0 {
        bail!("brackets do not match");
    }
    items.push(cur);
    Ok(items)
}

/// Round to 12 significant digits, so that `0.1:0.3:0.1` gives 0.3 and not 0.30000000000000004.
fn tidy(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 12 - x.abs().log10().ceil() as i32;
    let scale = 10f64.powi(digits.clamp(-300, 300));
    (x * scale).round() / scale
}

/// An integer range `a..b` (inclusive, as `k=1..10` reads) or `a..=b`.
fn int_range(item: &str) -> Option<Result<Vec<Value>>> {
    let (a, b) = item.split_once("..")?;
    let b = b.strip_prefix('=').unwrap_or(b);
    let (Ok(a), Ok(b)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>()) else {
        return Some(Err(anyhow::anyhow!("`{item}` is not a range of integers (e.g. 1..10)")));
    };
    if b < a {
        return Some(Err(anyhow::anyhow!(
            "range `{item}` is empty (its end is below its start)"
        )));
    }
    if (b - a) as u128 >= MAX_POINTS as u128 {
        return Some(Err(anyhow::anyhow!("range `{item}` has more than {MAX_POINTS} values")));
    }
    Some(Ok((a..=b).map(Value::from).collect()))
}

/// A float range `start:stop:step`, stop included when it is reached within rounding.
fn float_range(item: &str) -> Option<Result<Vec<Value>>> {
    let parts: Vec<&str> = item.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    let nums: Vec<f64> = parts.iter().filter_map(|p| p.trim().parse::<f64>().ok()).collect();
    let [a, b, step] = nums.as_slice() else {
        return Some(Err(anyhow::anyhow!(
            "`{item}` is not a range start:stop:step of numbers (e.g. 0.1:0.5:0.1)"
        )));
    };
    if !(a.is_finite() && b.is_finite() && step.is_finite()) || *step <= 0.0 {
        return Some(Err(anyhow::anyhow!(
            "range `{item}`: start and stop must be finite and the step positive"
        )));
    }
    if b < a {
        return Some(Err(anyhow::anyhow!(
            "range `{item}` is empty (its stop is below its start)"
        )));
    }
    let n = ((b - a) / step + 1e-9).floor() + 1.0;
    if n > MAX_POINTS as f64 {
        return Some(Err(anyhow::anyhow!("range `{item}` has more than {MAX_POINTS} values")));
    }
    Some(Ok((0..n as usize)
        .map(|i| Value::from(tidy(a + i as f64 * step)))
        .collect()))
}

/// A Rhai literal (or a bare word, a string) as a JSON value.
fn literal(name: &str, item: &str) -> Result<Value> {
    let (_, v) = crate::script::parse_arg(&format!("{name}={item}")).map_err(|e| anyhow::anyhow!(e))?;
    let json: Value =
        rhai::serde::from_dynamic(&v).map_err(|e| anyhow::anyhow!("`{item}` cannot be passed to a point ({e})"))?;
    if matches!(json, Value::Null | Value::Object(_)) {
        bail!("`{item}` is not a number, string, boolean or array");
    }
    Ok(json)
}

/// Parse one `--grid name=spec`.
pub fn parse_axis(arg: &str) -> Result<Axis> {
    let what = format!("--grid {arg}");
    let (name, spec) = arg
        .split_once('=')
        .with_context(|| format!("{what}: expected NAME=VALUES (e.g. k=1..10 or algo=kmeans,agglomerative)"))?;
    let name = name.trim();
    check_name(name, &what)?;
    let mut values = Vec::new();
    for item in split_items(spec).with_context(|| what.clone())? {
        let item = item.trim();
        if item.is_empty() {
            bail!("{what}: an empty value (two commas in a row, or nothing after `=`)");
        }
        let expanded = if item.starts_with(['"', '\'', '`', '[']) {
            None
        } else {
            int_range(item).or_else(|| float_range(item))
        };
        match expanded {
            Some(r) => values.extend(r.with_context(|| what.clone())?),
            None => values.push(literal(name, item).with_context(|| what.clone())?),
        }
    }
    if values.len() > MAX_POINTS {
        bail!("{what}: more than {MAX_POINTS} values");
    }
    Ok(Axis {
        name: name.to_string(),
        values,
    })
}

/// The points of a `--grid-file`: a JSON array of objects (a list of points) or an object of
/// arrays (a product, keys in the file's order).
pub fn read_grid_file(path: &Path) -> Result<Vec<Point>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read grid file {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("grid file {}: not valid JSON", path.display()))?;
    let what = format!("grid file {}", path.display());
    match value {
        Value::Array(items) => {
            if items.len() > MAX_POINTS {
                bail!("{what}: more than {MAX_POINTS} points");
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(m) => {
                        for (k, v) in &m {
                            check_name(k, &format!("{what}, point {i}"))?;
                            if matches!(v, Value::Null | Value::Object(_)) {
                                bail!(
                                    "{what}, point {i}, key `{k}`: a value must be a number, string, boolean or array"
                                );
                            }
                        }
                        Ok(m)
                    }
                    other => bail!("{what}, point {i}: expected an object of NAME: VALUE, found {other}"),
                })
                .collect()
        }
        Value::Object(m) => {
            let mut axes = Vec::new();
            for (k, v) in m {
                check_name(&k, &what)?;
                match v {
                    Value::Array(values) if !values.is_empty() => axes.push(Axis { name: k, values }),
                    _ => bail!("{what}, key `{k}`: expected a non-empty array of values"),
                }
            }
            product(&[], &axes)
        }
        _ => bail!("{what}: expected an array of points or an object of NAME: [VALUES]"),
    }
}

/// Every combination of `base` points (one empty point when there are none) with the axes'
/// values, the last axis varying fastest.
pub fn product(base: &[Point], axes: &[Axis]) -> Result<Vec<Point>> {
    let mut seen: Vec<&str> = Vec::new();
    for a in axes {
        if seen.contains(&a.name.as_str()) {
            bail!("--grid {} is given twice", a.name);
        }
        if a.values.is_empty() {
            bail!("--grid {} has no values", a.name);
        }
        seen.push(&a.name);
    }
    for (i, p) in base.iter().enumerate() {
        if let Some(k) = p.keys().find(|k| seen.contains(&k.as_str())) {
            bail!("key `{k}` is in both the grid file (point {i}) and a --grid");
        }
    }
    let mut points: Vec<Point> = if base.is_empty() {
        vec![Map::new()]
    } else {
        base.to_vec()
    };
    for a in axes {
        let n = points.len().saturating_mul(a.values.len());
        if n > MAX_POINTS {
            bail!("the grid has more than {MAX_POINTS} points");
        }
        let mut next = Vec::with_capacity(n);
        for p in &points {
            for v in &a.values {
                let mut q = p.clone();
                q.insert(a.name.clone(), v.clone());
                next.push(q);
            }
        }
        points = next;
    }
    Ok(points)
}

/// A JSON value as the Rhai literal `advlab run` parses back into the same value.
pub fn rhai_literal(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}")),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let s = format!("{f:?}");
            if s.contains(['.', 'e', 'E']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        Value::Array(items) => format!("[{}]", items.iter().map(rhai_literal).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// A value as a short label (strings unquoted).
pub fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn axes_parse_lists_ranges_and_literals() {
        let a = parse_axis("k=1..4").unwrap();
        assert_eq!(a.values, vec![json!(1), json!(2), json!(3), json!(4)]);
        let a = parse_axis("eps=0.1:0.3:0.1").unwrap();
        assert_eq!(a.values, vec![json!(0.1), json!(0.2), json!(0.3)]);
        let a = parse_axis(r#"algo=kmeans,"agg, ward",true,[1,2],2.5"#).unwrap();
        assert_eq!(
            a.values,
            vec![
                json!("kmeans"),
                json!("agg, ward"),
                json!(true),
                json!([1, 2]),
                json!(2.5)
            ]
        );
        for bad in [
            "k",
            "k=",
            "k=1,,2",
            "1k=2",
            "k=5..1",
            "k=0.1:0.5:0",
            "k=[1,2",
            "k=\"a",
            "point=1",
            "k=1..1000000",
        ] {
            assert!(parse_axis(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn products_vary_the_last_axis_fastest_and_refuse_repeats() {
        let axes = [parse_axis("a=1,2").unwrap(), parse_axis("b=x,y,z").unwrap()];
        let pts = product(&[], &axes).unwrap();
        assert_eq!(pts.len(), 6);
        assert_eq!(pts[1]["a"], json!(1));
        assert_eq!(pts[1]["b"], json!("y"));
        assert!(product(&[], &[parse_axis("a=1").unwrap(), parse_axis("a=2").unwrap()]).is_err());
    }

    #[test]
    fn literals_round_trip_through_the_argument_parser() {
        for v in [
            json!(1),
            json!(-3),
            json!(0.1),
            json!(1e-7),
            json!(2.0),
            json!("a \"q\""),
            json!(true),
            json!([1, "x"]),
        ] {
            let text = rhai_literal(&v);
            let back = literal("x", &text).unwrap();
            assert_eq!(back, v, "{text}");
        }
    }
}
