//! One folder per stack shape: what `up`, `plan`, `status`, `destroy` and the rest mean
//! for it. Shapes share nothing but what lies below them (deploy, targets, host, cloud).

pub mod aws;
pub mod local;
pub mod ssh;
