//! Small helpers with no domain: unique names for rows and results.

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
