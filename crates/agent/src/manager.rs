//! The agent's link to the manager is node's [`node::ManagerLink`] (identity in `manager.json`,
//! mode 0600; policy in `policy.json`); this module names the types the agent uses from it.

pub use node::manager::Policy;
