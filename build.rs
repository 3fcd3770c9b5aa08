//! Build information for `--version` and `lae_build_info`: the git revision (`unknown` when
//! built outside a git checkout, e.g. from a source tarball), the compiler and the target.

use std::path::Path;
use std::process::Command;

fn main() {
    let revision =
        git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LAE_GIT_REVISION={revision}");
    println!("cargo:rustc-env=LAE_RUSTC_VERSION={rustc_version}");
    println!(
        "cargo:rustc-env=LAE_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    // A new commit or a checkout changes the revision.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        let git_dir = Path::new(&git_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--git-common-dir"]).unwrap_or_default();
            println!(
                "cargo:rerun-if-changed={}",
                Path::new(&common).join(reference).display()
            );
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// `git ARGS` in the package's directory, trimmed; `None` when git or the checkout is absent.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(std::env::var("CARGO_MANIFEST_DIR").ok()?)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_string())
}
