//! The download path (README, "Data"): with no local copy, MNIST's four files and CIFAR-10's
//! archive are fetched from a server (here a local one standing in for the publishers', through
//! `ADVLAB_MIRROR`) into the first place searched, found there by the next run without a
//! request; a missing or corrupt file leaves nothing behind and the error names the address.

use crate::common::{advlab, script, small_mnist};
use predicates::prelude::*;
use predicates::str::contains;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A minimal HTTP/1.1 file server over `root` on a free local port: 200 with the file, or 404.
/// Returns its address and the paths it was asked for.
fn serve(root: PathBuf) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(Vec::new()));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // the headers, up to the blank line
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            seen.lock().unwrap().push(path.clone());
            let _ = match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(body) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| stream.write_all(&body)),
                Err(_) => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    (url, hits)
}

/// `advlab run s` in `dir` with downloads on, from `mirror`, into `store`.
fn run(dir: &Path, s: &Path, mirror: &str, store: &Path) -> assert_cmd::assert::Assert {
    advlab()
        .current_dir(dir)
        .env_remove("ADVLAB_OFFLINE")
        .env("ADVLAB_MIRROR", mirror)
        .env("ADVLAB_DATA", store)
        .arg("run")
        .arg(s)
        .arg("--out")
        .arg(dir.join("out"))
        .assert()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn mnist_downloads_once_into_the_first_place_searched() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir_all(served.join("mnist")).unwrap();
    small_mnist(&served.join("mnist"), 50, 20);
    let (url, hits) = serve(served);
    let store = tmp.path().join("store");
    let s = script(
        tmp.path(),
        "m.rhai",
        "let d = mnist();\nprint(`${d.train.len()} ${d.test.len()}`);\n",
    );
    run(tmp.path(), &s, &url, &store).success().stdout(contains("50 20"));
    assert_eq!(hits.lock().unwrap().len(), 4, "{:?}", hits.lock().unwrap());
    assert_eq!(
        files(&store.join("mnist")),
        [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz"
        ]
    );
    // the next run finds the copy: no request
    run(tmp.path(), &s, &url, &store).success().stdout(contains("50 20"));
    assert_eq!(hits.lock().unwrap().len(), 4);
}

#[test]
fn a_missing_or_corrupt_download_leaves_nothing_and_names_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir_all(served.join("fashion-mnist")).unwrap();
    let (url, _) = serve(served.clone());
    let store = tmp.path().join("store");
    let s = script(
        tmp.path(),
        "f.rhai",
        "let d = fashion_mnist();\nprint(d.train.len());\n",
    );
    run(tmp.path(), &s, &url, &store)
        .code(1)
        .stderr(contains("fashion-mnist data not found"))
        .stderr(contains(format!("{url}/fashion-mnist/train-images-idx3-ubyte.gz")))
        .stderr(contains("404"));
    assert!(files(&store.join("fashion-mnist")).is_empty());
    // a truncated gzip file: refused when read, and every fetched file removed
    small_mnist(&served.join("fashion-mnist"), 30, 10);
    let images = served.join("fashion-mnist/t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() / 2]).unwrap();
    run(tmp.path(), &s, &url, &store)
        .code(1)
        .stderr(contains("unusable data, removed"))
        .stderr(contains("t10k-images-idx3-ubyte.gz"))
        .stderr(contains("panicked").not());
    assert!(
        files(&store.join("fashion-mnist")).is_empty(),
        "{:?}",
        files(&store.join("fashion-mnist"))
    );
}

#[test]
fn cifar10_downloads_its_archive_and_unpacks_the_six_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let batches = crate::cifar::write_cifar(&tmp.path().join("src"), 4, 6);
    let served = tmp.path().join("served/cifar-10-batches-bin");
    std::fs::create_dir_all(&served).unwrap();
    let archive = std::fs::File::create(served.join("cifar-10-binary.tar.gz")).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(archive, flate2::Compression::fast()));
    tar.append_dir_all("cifar-10-batches-bin", &batches).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let (url, hits) = serve(tmp.path().join("served"));
    let store = tmp.path().join("store");
    let s = script(
        tmp.path(),
        "c.rhai",
        "let d = cifar10();\nprint(`${d.train.len()} ${d.test.len()}`);\n",
    );
    run(tmp.path(), &s, &url, &store).success().stdout(contains("20 6"));
    assert_eq!(
        files(&store),
        ["cifar-10-batches-bin"],
        "the archive is removed once unpacked"
    );
    assert_eq!(files(&store.join("cifar-10-batches-bin")).len(), 6);
    run(tmp.path(), &s, &url, &store).success().stdout(contains("20 6"));
    assert_eq!(hits.lock().unwrap().len(), 1);
}
