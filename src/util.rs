//! Small helpers with no domain: unique names for rows and results, seeded samples of indices,
//! counts with thousands separators, and what a panic said and where.

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

/// Where in advlab's source the last panic happened, as noted by the hook of [`note_panics`].
static PANICKED_AT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Replace the default panic hook ("thread … panicked at …" on stderr) with one that only notes
/// where the panic happened: whoever catches it reports it as an internal error, with
/// [`panic_message`]. The binary calls this at start-up.
pub fn note_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        if let Ok(mut noted) = PANICKED_AT.lock() {
            *noted = at;
        }
    }));
}

/// The message of a caught panic's `payload`, with where it happened when that was noted.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let at = PANICKED_AT.lock().ok().and_then(|mut noted| noted.take());
    match at {
        Some(at) => format!("{what} (at {at})"),
        None => what,
    }
}
