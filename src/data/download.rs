//! Fetching a public data set once, when no local copy is found: its files straight from the
//! publisher's server through a small blocking HTTP client (the `download` feature), written
//! into the first place the loaders search (`$ADVLAB_DATA/<name>`, else `./data/<name>`), so the
//! next run finds them there. Every file lands under its name only when it is complete (written
//! beside it, then renamed); what the server sends is bounded before it is stored.
//!
//! `ADVLAB_OFFLINE` skips the download; `ADVLAB_MIRROR` replaces the publishers' servers with one
//! that serves `<mirror>/<name>/<file>` (a local copy, or the tests' server).

use std::path::{Path, PathBuf};

/// Where a download of data set `name` is stored: the first place the loaders search.
pub(crate) fn destination(name: &str) -> PathBuf {
    match std::env::var_os("ADVLAB_DATA") {
        Some(root) => PathBuf::from(root).join(name),
        None => PathBuf::from("data").join(name),
    }
}

/// The addresses to try for `file` of data set `name`: the mirror's when `ADVLAB_MIRROR` is
/// set, else the publisher's (`bases`, each ending in `/`).
pub(crate) fn urls(name: &str, file: &str, bases: &[&str]) -> Vec<String> {
    match std::env::var("ADVLAB_MIRROR") {
        Ok(m) => vec![format!("{}/{name}/{file}", m.trim_end_matches('/'))],
        Err(_) => bases.iter().map(|b| format!("{b}{file}")).collect(),
    }
}

/// Why a download is not attempted, if it is not.
pub(crate) fn skipped() -> Option<String> {
    if std::env::var_os("ADVLAB_OFFLINE").is_some() {
        Some("a download (skipped: ADVLAB_OFFLINE is set)".into())
    } else if !cfg!(feature = "download") {
        Some("a download (this advlab was built without the `download` feature)".into())
    } else {
        None
    }
}

/// Fetch the first of `urls` that answers into `dest` (at most `limit` bytes), through a
/// partial file beside it renamed when complete. The error names every address tried.
#[cfg(feature = "download")]
pub(crate) fn fetch(urls: &[String], dest: &Path, limit: u64) -> Result<(), String> {
    use std::io::Write;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .timeout_recv_body(Some(std::time::Duration::from_secs(120)))
        .build()
        .into();
    let part = partial(dest);
    let mut failures = Vec::new();
    for url in urls {
        let attempt = (|| -> Result<(), String> {
            let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
            let length = response
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(n) = length.filter(|n| *n > limit) {
                return Err(format!(
                    "the server announces {n} bytes, more than the {limit} expected"
                ));
            }
            let bar = crate::progress::bytes(length, &format!("downloading {url}"));
            let mut reader = bar.wrap_read(response.body_mut().with_config().limit(limit).reader());
            let mut file = std::fs::File::create(&part).map_err(|e| format!("cannot write {}: {e}", part.display()))?;
            std::io::copy(&mut reader, &mut file).map_err(|e| e.to_string())?;
            file.flush().and_then(|_| file.sync_all()).map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            std::fs::rename(&part, dest).map_err(|e| format!("cannot move it to {}: {e}", dest.display()))
        })();
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                failures.push(format!("{url} ({e})"));
            }
        }
    }
    Err(format!("a download from {}", failures.join(", then ")))
}

#[cfg(not(feature = "download"))]
pub(crate) fn fetch(_urls: &[String], _dest: &Path, _limit: u64) -> Result<(), String> {
    Err("a download (this advlab was built without the `download` feature)".into())
}

/// The name a file is written under until it is complete.
pub(crate) fn partial(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Create `dir` (and its parents) for a download, with an error naming it.
pub(crate) fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("a download into {} (cannot create it: {e})", dir.display()))
}
