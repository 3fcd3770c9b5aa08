//! End-to-end tests: a real reqwest client talks to the fake over loopback.

mod audit_logs;
mod common;
mod data;
mod faults;
mod inventory;
mod paging;
mod ratelimit;
mod tokens;
mod wording;
