//! Integration tests: the built exporter binary against the fake Lacework API on loopback,
//! with real SQLite state files in temporary directories.

mod accounts;
mod capacity;
mod chaos;
mod classify;
mod cli;
mod daemon;
mod demo;
mod elasticsearch;
mod exactly_once;
mod faults;
mod hec;
mod kafka;
mod never_miss;
mod never_repeat;
mod replay;
mod run;
mod security;
mod sentinel;
mod service;
mod stdout;
mod support;
mod webhook;
