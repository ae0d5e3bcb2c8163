//! Embeds the web console (`console/dist`, built by `npm run build` in `console/`) into
//! the API: writes `$OUT_DIR/console_assets.rs`, one `include_bytes!` per file, which
//! `src/console.rs` includes. Without a built console the API still builds, and `/`
//! answers a page saying how to build it (CI never takes that path: its browser test
//! fails on that page).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let console = manifest.join("../../console");
    let dist = console.join("dist");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("console_assets.rs");

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
        // Any file added, removed or rewritten under dist/ (cargo scans the directory).
        println!("cargo:rerun-if-changed={}", dist.display());
    } else {
        // Built later: the build's index.html appearing is what matters (a path that does
        // not exist is checked for on every build, cheaply).
        println!("cargo:rerun-if-changed={}", dist.join("index.html").display());
    }
    files.sort();

    let mut code = String::new();
    let _ = writeln!(code, "/// Whether `console/dist` was there when the API was built.");
    let _ = writeln!(code, "pub const BUILT: bool = {};", !files.is_empty());
    let _ = writeln!(code, "/// Every file of `console/dist`: its URL path and its bytes.");
    let _ = writeln!(code, "pub static ASSETS: &[(&str, &[u8])] = &[");
    for (url, path) in &files {
        let _ = writeln!(code, "    ({url:?}, include_bytes!({:?})),", path.display().to_string());
    }
    let _ = writeln!(code, "];");
    std::fs::write(&out, code).expect("writing console_assets.rs");
}

/// `(url path, absolute file path)` of every file under `dir`.
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("under the root");
            let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            let absolute = path
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            files.push((url, absolute));
        }
    }
}
