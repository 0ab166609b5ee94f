//! Small helpers with no domain: unique names for rows and results, seeded samples of indices,
//! counts with thousands separators.

use rand::{rngs::StdRng, SeedableRng};

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` of the indices `0..len` (all when `n >= len`), in increasing order: the first ones, or
/// with a seed, drawn without replacement from it.
pub fn sample_indices(len: usize, n: usize, seed: Option<u64>) -> Vec<usize> {
    let n = n.min(len);
    match seed {
        Some(seed) => {
            let mut pick = rand::seq::index::sample(&mut StdRng::seed_from_u64(seed), len, n).into_vec();
            pick.sort_unstable();
            pick
        }
        None => (0..n).collect(),
    }
}

/// A key for `base` that is not yet among `taken`: `base`, else `base_2`, `base_3`, …
pub fn unique_key<'a>(taken: impl Iterator<Item = &'a str> + Clone, base: &str) -> String {
    let mut key = base.to_string();
    let mut k = 2;
    while taken.clone().any(|name| name == key) {
        key = format!("{base}_{k}");
        k += 1;
    }
    key
}
