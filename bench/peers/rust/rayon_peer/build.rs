// SPDX-License-Identifier: MIT
// Records, for the report, the Rayon version the build resolved (from the
// workspace's Cargo.lock) and the compiler's version.
use std::env;
use std::fs;
use std::path::Path;
use std::process::Command;

fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut in_package = false;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            in_package = false;
        } else if line == format!("name = \"{}\"", name) {
            in_package = true;
        } else if in_package && line.starts_with("version = ") {
            return Some(line["version = ".len()..].trim_matches('"').to_string());
        }
    }
    None
}

fn main() {
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap();
    let lock_path = Path::new(&dir).join("..").join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let rayon = fs::read_to_string(&lock_path)
        .ok()
        .and_then(|lock| locked_version(&lock, "rayon"))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=RAYON_PEER_RAYON_VERSION={}", rayon);

    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=RAYON_PEER_RUSTC_VERSION={}", version);
}
