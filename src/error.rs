//! One error type for the whole tool; it owns the exit code.
//!
//! Exit codes: 0 pass, 1 fail (see `Verdict`), 2 the invocation or an input is wrong,
//! 3 the environment prevents a verdict.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the user named cannot be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },

    /// A capture file that libpcap will not open (not a capture, bad header).
    #[error("{path}: not a readable pcap or pcapng capture: {reason}")]
    BadCapture { path: PathBuf, reason: String },

    /// A capture whose link type the decoder does not handle.
    #[error("{path}: unsupported link type {name} ({number}); supported: Ethernet (1), Linux SLL (113), Linux SLL2 (276), raw IP (12, 14, 101), IPv4 (228), IPv6 (229), BSD null (0), BSD loop (108)")]
    UnsupportedLinkType {
        path: PathBuf,
        name: String,
        number: i32,
    },

    /// The allowlist file is broken: YAML syntax, unknown keys, bad values.
    #[error("allowlist {path}: {message}")]
    Allowlist { path: String, message: String },

    /// A command-line value that passed clap but is not acceptable.
    #[error("{option} {value:?}: {expected}")]
    BadArgument {
        option: &'static str,
        value: String,
        expected: String,
    },

    /// A report file that cannot be written.
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    /// Reading the capture failed part-way for a reason other than a truncated file.
    #[error("{path}: capture read error: {reason}")]
    CaptureRead { path: PathBuf, reason: String },
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Unreadable { .. }
            | Error::BadCapture { .. }
            | Error::UnsupportedLinkType { .. }
            | Error::Allowlist { .. }
            | Error::BadArgument { .. }
            | Error::Write { .. } => 2,
            Error::CaptureRead { .. } => 3,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
