//! Benchmark harness for wsguard: shared pieces of the `loadgen`, `echo`
//! and `benchtool` binaries.

pub mod client;
pub mod modes;
pub mod procstat;
pub mod report;
pub mod rotation;
pub mod table;
pub mod tokens;
