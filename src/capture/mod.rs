//! Packets in: a saved capture ([`file`](mod@file)), or a live one ([`live`]) at a capture point — the sink
//! end of a [`sandbox`] whose [`sinkhole`] answers every name, or a container's own interface on a
//! real network ([`point`]) — proven on every run by a [`canary`]. In a sealed run the sinkhole also
//! tells which container process made each attempt it takes ([`attribution`]).

pub mod attribution;
pub mod canary;
pub mod file;
pub mod filter;
pub mod live;
pub mod point;
pub mod procs;
pub mod sandbox;
pub mod sensor;
pub mod sinkhole;
pub mod sock_diag;

pub use canary::Canary;
pub use file::{describe_read_stop, read_file, ts_micros, ReadOutcome, MAX_MICROS, MIN_MICROS};
pub use filter::check_filter;
pub use live::{LiveCapture, LiveResult};
