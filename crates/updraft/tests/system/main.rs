//! End-to-end tests of the real `updraft` binary (publisher, origin, relays, agents, manager,
//! demo) as processes on 127.0.0.1: one test binary, one module per property it protects.
//! Environment for a child process (such as `UPDRAFT_FAULT`) is passed to that child only; no
//! test changes this process's environment, so the tests can share it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../../transport/tests/http/hostile.rs"]
mod hostile;

mod admin_cli;
mod agent_crash;
mod agent_manager;
mod agent_patches;
mod agent_updates;
mod clamav_consumer;
mod console;
mod crash_during_sync;
mod deltas;
mod demo;
mod fleet_scenarios;
mod manager_abuse;
mod manager_api;
mod manager_protocol;
mod no_panics_no_leaks;
mod node_link;
mod observability;
mod offline_bundles;
mod publish_and_download;
mod python_interop;
mod relay_failover;
mod relay_manager;
mod relay_root_rotation;
mod relay_serving;
mod relay_tls_and_config;
mod relay_tree;
mod rotation_and_malicious_relay;
mod slowloris;
mod staged_rollouts;
mod trust_attacks;
