//! The `updraft` crate's library: what `updraft demo` and the system tests share to run the
//! real `updraft` binary as processes on 127.0.0.1 (the command line itself is `src/main.rs`).

pub mod launch;
