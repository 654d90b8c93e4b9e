//! Event ingest: the event model, body parsing and validation, and the group-commit writer.

pub mod body;
pub mod event;
pub mod group_commit;
pub mod raw;

pub use event::Event;
