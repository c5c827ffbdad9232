//! Robust runs at farm scale: each variant in an isolated worker process with a timeout
//! ([`worker`], [`process`]), several devices at a time ([`pool`]), a deterministic slice of the
//! matrix per node ([`shard`]), interrupted runs continued ([`resume`]), and shard results joined
//! into one run ([`merge`]).

pub mod fault;
pub mod merge;
pub mod pool;
pub mod process;
pub mod resume;
pub mod shard;
pub mod worker;

pub use merge::{merge, MergeError, Merged};
pub use pool::{slots, Device, Pending, Scheduler, Slot};
pub use resume::{ResumeError, RunFolder};
pub use shard::{Shard, ShardError};
pub use worker::{serve, WorkerJob, WorkerReply, Workers};
