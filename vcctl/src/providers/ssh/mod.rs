//! The `ssh` stack: one host (the shared target over SSH, dispatched in `commands`) or a
//! fleet of hosts behind Caddy.

pub mod fleet;
