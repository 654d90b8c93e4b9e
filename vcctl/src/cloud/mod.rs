//! Cloud providers. Only AWS so far.

pub mod aws;
