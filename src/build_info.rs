//! What was built: the version, the git revision (`unknown` outside a git checkout), the
//! compiler and the target, set by `build.rs`. Ground floor: imports nothing of ours.

/// The package version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision built, 12 hex digits, or `unknown`.
pub const REVISION: &str = env!("LAE_GIT_REVISION");
/// `rustc --version` of the compiler.
pub const RUSTC: &str = env!("LAE_RUSTC_VERSION");
/// What `--version` prints after the program name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("LAE_GIT_REVISION"),
    ", ",
    env!("LAE_TARGET"),
    ")"
);
