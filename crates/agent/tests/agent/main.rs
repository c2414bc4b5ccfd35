//! The agent in process: one test binary, one module per property. Repositories are made with
//! the `tuf` engine in a temporary directory and read through `file://` URLs over an injected
//! fetcher, so no server runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod failover;
mod ledger;
mod policy;
mod report;
