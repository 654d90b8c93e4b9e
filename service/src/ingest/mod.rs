//! Event ingest: the event model, body parsing and validation, and the group-commit writer.

pub mod body;
pub mod raw;
pub mod event;
pub mod group_commit;

pub use event::Event;
