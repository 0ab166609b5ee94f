//! How the REPL shows a value: a tensor's shape, dtype, range and first values; a data set's
//! size, shape and label counts; a model's layers and parameter count; a clustering's table;
//! rows (an array of maps) as an aligned table.

use crate::cluster::Clustering;
use crate::data::{Dataset, Splits};
use crate::nn::Model;
use crate::plot::Chart;
use rhai::{Array, Dynamic, Engine, Map, Scope, AST};

/// Shows values, calling the script's own `to_string` for types it has no special form for.
pub struct Shower {
    to_string: AST,
}

fn dataset(d: &Dataset) -> String {
    let counts = match d.label_counts() {
        Ok(c) => c
            .iter()
            .enumerate()
            .map(|(l, n)| format!("{l}:{n}"))
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => format!("({e})"),
    };
    format!("{d}\n  labels {counts}")
}

fn model(m: &Model) -> String {
    let mut lines = vec![format!(
        "Model {}: {} parameters on {}",
        m.arch(),
        group_thousands(m.param_count()),
        crate::device::name(m.device())
    )];
    let params: Vec<(&str, Vec<usize>, usize)> = m
        .named_params()
        .map(|(n, t)| (n, t.dims().to_vec(), t.elem_count()))
        .collect();
    for (name, dims, count) in &params {
        let Some(layer) = name.strip_suffix(".weight") else {
            continue;
        };
        let bias = params
            .iter()
            .find(|(n, _, _)| n.strip_suffix(".bias") == Some(layer))
            .map_or(0, |b| b.2);
        let kind = match dims.as_slice() {
            [o, i] => format!("Linear({i} → {o})"),
            [o, i, kh, kw] => format!("Conv2d({i} → {o}, {kh}×{kw})"),
            other => format!("{other:?}"),
        };
        lines.push(format!(
            "  {layer:>3}  {kind:<24} {:>10} parameters",
            group_thousands(count + bias)
        ));
    }
    if let Some(p) = m.pipeline() {
        lines.push(format!("  defended: input → {p} → network"));
    }
    lines.join("\n")
}

fn group_thousands(n: usize) -> String {
    crate::util::thousands(n as u64)
}

fn clustering(c: &Clustering) -> String {
    let n = c.labels().len().max(1) as f64;
    let mut rows = Array::new();
    for (i, size) in c.sizes().into_iter().enumerate() {
        let mut m = Map::new();
        m.insert("cluster".into(), (i as rhai::INT).into());
        m.insert("size".into(), (size as rhai::INT).into());
        m.insert("share".into(), (size as f64 / n).into());
        rows.push(m.into());
    }
    if c.noise() > 0 {
        let mut m = Map::new();
        m.insert("cluster".into(), (-1 as rhai::INT).into());
        m.insert("size".into(), (c.noise() as rhai::INT).into());
        m.insert("share".into(), (c.noise() as f64 / n).into());
        rows.push(m.into());
    }
    let mut out = format!(
        "Clustering by {} of {} points into {} clusters",
        c.algorithm(),
        c.labels().len(),
        c.n_clusters()
    );
    if let Some(i) = c.inertia() {
        out.push_str(&format!(", inertia {i:.4}"));
    }
    if let Some(t) = table(&rows) {
        out.push('\n');
        out.push_str(&t);
    }
    out.push_str("\n(.summary(data) adds each cluster's labels and purity)");
    out
}

/// The column order of a table: the summary's when the rows are a summary, else the maps'.
fn table(rows: &Array) -> Option<String> {
    let first = rows.first()?.read_lock::<Map>()?.clone();
    let summary = crate::script::SUMMARY_COLUMNS;
    let order: Vec<String> = if first.keys().all(|k| summary.contains(&k.as_str())) {
        summary
            .iter()
            .filter(|c| first.contains_key(**c))
            .map(|c| c.to_string())
            .collect()
    } else if first.contains_key("cluster") {
        std::iter::once("cluster".to_string())
            .chain(first.keys().filter(|k| k.as_str() != "cluster").map(|k| k.to_string()))
            .collect()
    } else {
        Vec::new()
    };
    crate::script::table(rows, &order).ok()
}

fn chart(c: &Chart) -> String {
    let what = match c {
        Chart::Line(l) => format!(
            "line chart \"{}\", {} series of {} points",
            l.title,
            l.series.len(),
            l.x.len()
        ),
        Chart::Bar(b) => format!("bar chart \"{}\", {} groups", b.title, b.groups.len()),
        Chart::Scatter(s) => format!("scatter chart \"{}\", {} points", s.title, s.points.len()),
        Chart::Images(g) => format!("image grid \"{}\", {} images", g.title, g.images.len()),
        Chart::ImageRows(g) => format!(
            "image rows \"{}\", {} rows of {} images",
            g.title,
            g.rows.len(),
            g.rows.iter().map(Vec::len).max().unwrap_or(0)
        ),
        Chart::Histogram(h) => format!(
            "histogram \"{}\", {} series in {} bins",
            h.title,
            h.series.len(),
            h.bins
        ),
        Chart::Heatmap(h) => format!(
            "heatmap \"{}\", {}×{} cells",
            h.title,
            h.y_labels.len(),
            h.x_labels.len()
        ),
    };
    format!("Chart: {what}; write it with .save(\"out/name.png\") or .svg")
}

impl Shower {
    pub fn new(engine: &Engine) -> Self {
        let to_string = engine.compile("fn show(x) { x.to_string() }").unwrap_or_default();
        Self { to_string }
    }

    fn script_string(&self, engine: &Engine, v: &Dynamic) -> String {
        engine
            .call_fn::<String>(&mut Scope::new(), &self.to_string, "show", (v.clone(),))
            .unwrap_or_else(|_| v.to_string())
    }

    /// The text shown for a value; empty for `()`.
    pub fn show(&self, engine: &Engine, v: &Dynamic) -> String {
        if v.is_unit() {
            return String::new();
        }
        if let Some(d) = v.read_lock::<Dataset>() {
            return dataset(&d);
        }
        if let Some(s) = v.read_lock::<Splits>() {
            return format!("train: {}\ntest:  {}", dataset(&s.train), dataset(&s.test));
        }
        if let Some(m) = v.read_lock::<Model>() {
            return model(&m);
        }
        if let Some(c) = v.read_lock::<Clustering>() {
            return clustering(&c);
        }
        if let Some(c) = v.read_lock::<Chart>() {
            return chart(&c);
        }
        if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
            return format!("{:?}", s.as_str());
        }
        if let Some(a) = v.read_lock::<Array>() {
            if !a.is_empty() && a.iter().all(|r| r.is_map()) {
                if let Some(t) = table(&a) {
                    return t;
                }
            }
            if !a.is_empty() && a.iter().all(|r| r.is_array()) && a.len() <= 50 {
                return a
                    .iter()
                    .enumerate()
                    .map(|(i, r)| format!("{i:>3}: {}", self.show(engine, r)))
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            let shown: Vec<String> = a.iter().take(20).map(|x| self.inline(engine, x)).collect();
            let more = if a.len() > 20 {
                format!(", … ({} items)", a.len())
            } else {
                String::new()
            };
            return format!("[{}{more}]", shown.join(", "));
        }
        if v.is_map() {
            return self.inline(engine, v);
        }
        self.script_string(engine, v)
    }

    /// A variable's type and a short description (shape, size), for `:vars`.
    pub fn brief(&self, engine: &Engine, v: &Dynamic) -> (String, String) {
        let ty = engine.map_type_name(v.type_name()).to_string();
        let detail = if let Some(t) = v.read_lock::<candle_core::Tensor>() {
            format!("{:?} {:?}", t.dims(), t.dtype())
        } else if let Some(d) = v.read_lock::<Dataset>() {
            let (c, h, w) = d.image_shape();
            format!("{} samples of {c}×{h}×{w}, \"{}\"", d.len(), d.name())
        } else if let Some(s) = v.read_lock::<Splits>() {
            format!("train {}, test {}", s.train.len(), s.test.len())
        } else if let Some(m) = v.read_lock::<Model>() {
            format!("{}, {} parameters", m.arch(), group_thousands(m.param_count()))
        } else if let Some(c) = v.read_lock::<Clustering>() {
            format!("{} clusters of {} points", c.n_clusters(), c.labels().len())
        } else if let Some(a) = v.read_lock::<Array>() {
            format!("{} items", a.len())
        } else if let Some(m) = v.read_lock::<Map>() {
            format!(
                "{} keys: {}",
                m.len(),
                m.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            )
        } else {
            self.inline(engine, v)
        };
        let detail = if detail.chars().count() > 70 {
            format!("{}…", detail.chars().take(69).collect::<String>())
        } else {
            detail
        };
        (ty, detail)
    }

    /// A short one-line form, for elements of arrays and maps.
    fn inline(&self, engine: &Engine, v: &Dynamic) -> String {
        if let Some(m) = v.read_lock::<Map>() {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{k}: {}", self.inline(engine, x)))
                .collect();
            return format!("#{{ {} }}", parts.join(", "));
        }
        if v.is_float() {
            let f = v.as_float().unwrap_or(f64::NAN);
            return format!("{}", (f * 1e6).round() / 1e6);
        }
        if v.is_string() {
            return format!("{:?}", v.to_string());
        }
        if v.is_array() || v.is::<Dataset>() || v.is::<Model>() || v.is::<Clustering>() {
            return self.show(engine, v).lines().next().unwrap_or_default().to_string();
        }
        self.script_string(engine, v)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(group_thousands(999), "999");
    }
}
