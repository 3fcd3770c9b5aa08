//! The fuzzing loop: the committed corpus run as it is, then proptest rounds until the time
//! budget (`LAE_FUZZ_SECONDS`) is spent, with panics turned into failed cases.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config, FileFailurePersistence, TestCaseError, TestCaseResult, TestError, TestRunner,
};

/// Seconds each target fuzzes for; CI sets it to 60, a plain `cargo test` uses the default.
pub const SECONDS_VAR: &str = "LAE_FUZZ_SECONDS";

/// Budget per target when `LAE_FUZZ_SECONDS` is not set: enough for a few thousand cases,
/// short enough that `cargo test` stays quick.
const DEFAULT_SECONDS: f64 = 2.0;

/// Cases per proptest round; the deadline is checked between rounds, so a round must stay
/// short even in a debug build.
const CASES_PER_ROUND: u32 = 48;

/// Shrinking a failure stops after this long and reports the smallest input found so far.
const MAX_SHRINK_MILLIS: u32 = 60_000;

/// One fuzz target: where its seeds live, where proptest keeps the seeds of failures, and how a
/// failing input is written out so it can become a corpus file.
pub struct Target {
    /// Name of the corpus folder, `tests/corpus/<name>/`.
    pub name: &'static str,
    /// proptest's failure-persistence file (absolute, so the working directory does not matter).
    pub regressions: &'static str,
    /// File extension of a saved failing input, e.g. `json` or `toml`.
    pub extension: &'static str,
}

/// A fuzz input that can be written out as a corpus file.
pub trait Input: fmt::Debug {
    /// The input as the bytes of a corpus file of its target.
    fn to_seed(&self) -> Vec<u8>;
}

/// One committed seed file.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Path of the file, for messages.
    pub path: PathBuf,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// What one target did, for the summary line.
#[derive(Debug)]
pub struct Report {
    /// Seeds run as they are.
    pub n_seeds: usize,
    /// Generated cases that passed (persisted failure seeds and cache hits not counted).
    pub n_cases: u64,
    /// Wall time spent, seeds included.
    pub elapsed: Duration,
}

/// Stack of the thread a target runs on: proptest's value trees for the nested unions of these
/// generators are large in a debug build, more than a test thread's default 2 MiB holds.
const STACK_BYTES: usize = 256 << 20;

/// Runs a fuzz target on its own thread with a large stack; its panic is the test's.
pub fn on_large_stack(target: impl FnOnce() + Send + 'static) {
    let name = std::thread::current().name().unwrap_or("fuzz").to_string();
    let outcome = std::thread::Builder::new()
        .name(name)
        .stack_size(STACK_BYTES)
        .spawn(target)
        .expect("a thread for the fuzz target")
        .join();
    if let Err(panic) = outcome {
        panic::resume_unwind(panic);
    }
}

/// The time budget of one target, from `LAE_FUZZ_SECONDS` (fractions allowed).
pub fn budget() -> Duration {
    match std::env::var(SECONDS_VAR) {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or_else(|| panic!("{SECONDS_VAR}={text:?} is not a number of seconds")),
        Err(_) => Duration::from_secs_f64(DEFAULT_SECONDS),
    }
}

/// Every file of `tests/corpus/<target>/`, sorted by name. A missing or empty folder fails the
/// test: a target that silently ran on no seeds would prove nothing.
pub fn corpus(target: &str) -> Vec<Seed> {
    let dir = corpus_dir().join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot read the corpus {}: {error}", dir.display()));
    let mut seeds: Vec<Seed> = entries
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .map(|path| Seed {
            bytes: std::fs::read(&path)
                .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display())),
            path,
        })
        .collect();
    seeds.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(!seeds.is_empty(), "the corpus {} is empty", dir.display());
    seeds
}

/// `tests/corpus/` of this package.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Runs `property` on every seed as it is, then on inputs drawn from `strategy` until the
/// budget is spent (at least one round). A failure or panic fails the test with the smallest
/// input proptest could shrink it to, saved under `target/fuzz-failures/`.
pub fn fuzz<S>(
    target: &Target,
    seeds: &[(PathBuf, S::Value)],
    strategy: S,
    property: impl Fn(&S::Value) -> TestCaseResult,
) -> Report
where
    S: Strategy,
    S::Value: Input,
{
    let start = Instant::now();
    let deadline = start + budget();
    for (path, input) in seeds {
        if let Err(error) = guarded(&property, input) {
            panic!(
                "fuzz target {}: the corpus seed {} fails: {error}",
                target.name,
                path.display()
            );
        }
    }
    let mut n_cases = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases: CASES_PER_ROUND,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(target.regressions))),
            max_shrink_time: MAX_SHRINK_MILLIS,
            ..Config::default()
        });
        match runner.run(&strategy, |input| guarded(&property, &input)) {
            Ok(()) => n_cases += u64::from(CASES_PER_ROUND),
            Err(TestError::Fail(reason, input)) => {
                let saved = save_failure(target, &input);
                panic!(
                    "fuzz target {}: {reason}\nminimal input: {input:?}\nsaved to {} \
                     (once fixed, copy it into tests/corpus/{}/ as a regression seed)",
                    target.name,
                    saved.display(),
                    target.name
                );
            }
            Err(TestError::Abort(reason)) => {
                panic!("fuzz target {}: proptest gave up: {reason}", target.name)
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let report = Report {
        n_seeds: seeds.len(),
        n_cases,
        elapsed: start.elapsed(),
    };
    summarize(target, &report);
    report
}

#[allow(
    clippy::print_stderr,
    reason = "the one summary line per fuzz target, shown with --nocapture in CI"
)]
fn summarize(target: &Target, report: &Report) {
    eprintln!(
        "fuzz {}: {} corpus seeds and {} generated cases in {:.1}s",
        target.name,
        report.n_seeds,
        report.n_cases,
        report.elapsed.as_secs_f64()
    );
}

/// Runs the property with panics caught and reported as a failed case, with their location.
fn guarded<V>(property: &impl Fn(&V) -> TestCaseResult, input: &V) -> TestCaseResult {
    install_panic_hook();
    IN_CASE.set(true);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| property(input)));
    IN_CASE.set(false);
    outcome.unwrap_or_else(|_| {
        let message = LAST_PANIC
            .take()
            .unwrap_or_else(|| "panicked (no message)".to_string());
        Err(TestCaseError::fail(message))
    })
}

thread_local! {
    /// Whether this thread is inside a fuzz case, whose panics are expected and reported.
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    /// The last panic of a fuzz case on this thread, with its location.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records the panics of fuzz cases instead of printing them (shrinking may panic hundreds of
/// times); every other panic goes to the hook that was there before.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CASE.get() {
                LAST_PANIC.set(Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Writes a failing input to `target/fuzz-failures/<target>/<digest>.<ext>`.
fn save_failure(target: &Target, input: &impl Input) -> PathBuf {
    use sha2::{Digest, Sha256};
    let bytes = input.to_seed();
    let digest = hex::encode(&Sha256::digest(&bytes)[..8]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fuzz-failures")
        .join(target.name);
    let path = dir.join(format!("{digest}.{}", target.extension));
    if let Err(error) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &bytes)) {
        return PathBuf::from(format!("(not saved: {error})"));
    }
    path
}

/// Shows bytes as text (lossy) with their length, for failure messages.
pub struct Shown<'a>(pub &'a [u8]);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes: {:?}",
            self.0.len(),
            String::from_utf8_lossy(self.0)
        )
    }
}
