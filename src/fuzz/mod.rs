//! Property-based fuzzing (tests only) of what reads untrusted input: the AuditLogs page
//! parser, the record normalizer and the configuration loader.
//!
//! Each target runs its committed corpus (`tests/corpus/<target>/`) as it is, then proptest
//! rounds of mutated seeds and structured random input until its time budget is spent:
//! `LAE_FUZZ_SECONDS` per target (default 2), so CI runs
//! `LAE_FUZZ_SECONDS=60 cargo test --locked --lib fuzz`. A failing input is shrunk, saved under
//! `target/fuzz-failures/<target>/` and, once fixed, committed to the corpus as a regression
//! seed.

mod config_loader;
mod harness;
mod json;
mod mutate;
mod normalizer;
mod page;
