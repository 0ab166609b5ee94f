//! Agreement between two labellings.

use std::collections::HashMap;

/// The adjusted Rand index of two labellings of the same points (1 = identical partitions,
/// about 0 = chance). Noise (`None`) counts as one more group.
pub fn adjusted_rand(a: &[Option<usize>], b: &[Option<usize>]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 1.0;
    }
    let mut table: HashMap<(Option<usize>, Option<usize>), u64> = HashMap::new();
    let (mut rows, mut cols): (HashMap<Option<usize>, u64>, HashMap<Option<usize>, u64>) = Default::default();
    for i in 0..n {
        *table.entry((a[i], b[i])).or_default() += 1;
        *rows.entry(a[i]).or_default() += 1;
        *cols.entry(b[i]).or_default() += 1;
    }
    let c2 = |x: u64| (x * x.saturating_sub(1)) as f64 / 2.0;
    let index: f64 = table.values().map(|&v| c2(v)).sum();
    let (sa, sb): (f64, f64) = (rows.values().map(|&v| c2(v)).sum(), cols.values().map(|&v| c2(v)).sum());
    let expected = sa * sb / c2(n as u64);
    let max = (sa + sb) / 2.0;
    if (max - expected).abs() < 1e-12 {
        return 1.0;
    }
    (index - expected) / (max - expected)
}
