//! The `local` stack: releases under `.vcctl/local/<stack>`, a supervised process, its
//! target for the deploy workflow and its plan.

pub mod deps;
pub mod pg_store;
pub mod plan;
pub mod process;
pub mod store;
pub mod supervise;
pub mod target;
