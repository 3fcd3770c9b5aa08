//! Integration tests against a real tansu 0.6 (`TANSU_BIN`): rdkafka transactional producers
//! write, rdkafka `read_committed` consumers read, with and without the proxy in between.

mod harness;
mod producer_crash;
mod read_committed;
