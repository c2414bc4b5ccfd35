//! The client workflow (TUF 1.0 section 5) against real repositories made by the engine and
//! broken in precise ways: one test binary, one module per property it protects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod arbitrary_target;
mod delegation;
mod freeze;
mod key_rotation;
mod malformed;
mod mix_and_match;
mod rollback;
mod threshold;
mod unusual_names;
