//! Tables of results as they leave a script (layer 1): rows grouped by key columns with the
//! mean and sample standard deviation of value columns, aligned text, and the pivot of rows
//! into a matrix. The bindings convert script values to cells and back; the rules live here.

use crate::error::{Error, Result};

/// One cell of a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Printed to 3 decimals.
    Float(f64),
    /// Printed as given (integers, strings, booleans).
    Text(String),
    Empty,
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Float(v) => format!("{v:.3}"),
            Cell::Text(t) => t.clone(),
            Cell::Empty => String::new(),
        }
    }
}

/// The rows of `keys` grouped by equal keys, in order of first appearance: each group's row
/// indices.
pub fn group(keys: &[Vec<String>]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&Vec<String>, Vec<usize>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, members)) => members.push(i),
            None => groups.push((k, vec![i])),
        }
    }
    groups.into_iter().map(|(_, m)| m).collect()
}

/// The mean and the sample standard deviation (n − 1; 0 for one value) of `xs`.
pub fn mean_std(xs: &[f64]) -> Result<(f64, f64)> {
    if xs.is_empty() {
        return Err(Error::Invalid("there are no values to average".into()));
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
    } else {
        0.0
    };
    Ok((mean, var.sqrt()))
}

/// An aligned text table: the header, then one line per row, each column right-aligned to
/// its widest cell.
pub fn text(columns: &[String], rows: &[Vec<Cell>]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(Cell::text).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(j, c)| {
            cells
                .iter()
                .map(|r| r.get(j).map_or(0, |v| v.chars().count()))
                .max()
                .unwrap_or(0)
                .max(c.chars().count())
        })
        .collect();
    let line = |vals: &[String]| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(columns)];
    out.extend(cells.iter().map(|r| line(r)));
    out.join("\n")
}

/// A matrix of one value per (y, x) pair: the x and y labels in order of first appearance,
/// and `values[y][x]` (NaN where no row gives the pair; the last row wins on repeats).
pub fn pivot(xs: &[String], ys: &[String], values: &[f64]) -> (Vec<String>, Vec<String>, Vec<Vec<f64>>) {
    let firsts = |v: &[String]| {
        let mut out: Vec<String> = Vec::new();
        for s in v {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    };
    let (xl, yl) = (firsts(xs), firsts(ys));
    let mut m = vec![vec![f64::NAN; xl.len()]; yl.len()];
    for ((x, y), v) in xs.iter().zip(ys).zip(values) {
        let cx = xl.iter().position(|n| n == x).unwrap_or(0);
        let cy = yl.iter().position(|n| n == y).unwrap_or(0);
        m[cy][cx] = *v;
    }
    (xl, yl, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_first_appearance_and_stats_are_the_sample_ones() {
        let k = |s: &str| vec![s.to_string()];
        assert_eq!(group(&[k("a"), k("b"), k("a")]), vec![vec![0, 2], vec![1]]);
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((m, s), (2.0, 1.0));
        assert_eq!(mean_std(&[4.0]).unwrap(), (4.0, 0.0));
        assert!(mean_std(&[]).is_err());
    }

    #[test]
    fn text_aligns_right_and_pivot_fills_gaps_with_nan() {
        let t = text(
            &["name".into(), "acc".into()],
            &[
                vec![Cell::Text("pgd".into()), Cell::Float(0.91234)],
                vec![Cell::Text("fgsm-long".into()), Cell::Empty],
            ],
        );
        assert_eq!(t, "     name    acc\n      pgd  0.912\nfgsm-long");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (xl, yl, m) = pivot(&s(&["a", "b", "a"]), &s(&["p", "p", "q"]), &[1.0, 2.0, 3.0]);
        assert_eq!((xl, yl), (s(&["a", "b"]), s(&["p", "q"])));
        assert_eq!(m[0], vec![1.0, 2.0]);
        assert_eq!(m[1][0], 3.0);
        assert!(m[1][1].is_nan());
    }
}
