//! Sets `PRECHECK_SOURCE_DIGEST`: the SHA-256 of precheck's sources and lock file. The reference
//! store keys every entry with it, so that a build whose numerics may differ (any change to the
//! code or a dependency's version) never reads what another build stored.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn main() {
    let mut found = vec![PathBuf::from("Cargo.lock"), PathBuf::from("Cargo.toml")];
    files(Path::new("src"), &mut found);
    found.sort();
    let mut hasher = Sha256::new();
    for path in &found {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(path).unwrap_or_default());
        hasher.update([0]);
    }
    println!(
        "cargo:rustc-env=PRECHECK_SOURCE_DIGEST={:x}",
        hasher.finalize()
    );
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=Cargo.toml");
}
