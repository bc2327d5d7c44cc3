//! One error type for the whole tool; it owns the exit code.
//!
//! Exit codes: 0 pass, 1 fail (see `Verdict`), 2 the invocation or an input is wrong,
//! 3 the environment prevents a verdict.

use std::path::PathBuf;

use crate::staging::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the user named cannot be read, for a reason of airgap-check's.
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },

    /// A file or folder the user named cannot be read: the system's error.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

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

    /// A buildpack's manifest.yml is broken (inspect): where, and what.
    #[error("{path}: {message}")]
    Manifest { path: String, message: String },

    /// The allowlist file is broken: YAML syntax, unknown keys, bad values.
    #[error("allowlist {path}: {message}")]
    Allowlist { path: String, message: String },

    /// The configuration file (airgap-check.yaml) is broken: YAML syntax, unknown keys, bad values.
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A command-line value that passed clap but is not acceptable.
    #[error("{option} {value:?}: {expected}")]
    BadArgument {
        option: &'static str,
        value: String,
        expected: String,
    },

    /// A report file that cannot be written, for a reason of airgap-check's.
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    /// A file that cannot be written: the system's error.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Reading the capture failed part-way for a reason other than a truncated file.
    #[error("{path}: capture read error: {reason}")]
    CaptureRead { path: PathBuf, reason: String },

    /// An input directory or archive is not what the lifecycle needs (no bin/, bad zip, …).
    #[error("{path}: {reason}")]
    BadInput { path: PathBuf, reason: String },

    /// The Docker engine cannot be reached or refused an operation.
    #[error(transparent)]
    Engine(#[from] EngineError),

    /// The stack image is neither present nor pullable.
    #[error("stack image {image} is not present locally and could not be pulled ({source}); build or load it first (docker build / docker load)")]
    StackImage {
        image: String,
        source: bollard::errors::Error,
    },

    /// The process lacks a privilege the sealed run needs.
    #[error("missing privilege: {what}; run as root (e.g. with sudo) or grant the capability")]
    Privilege { what: String },

    /// Building or using the sealed network failed.
    #[error(transparent)]
    Sandbox(#[from] crate::capture::sandbox::SandboxError),

    /// Live capture could not be opened or failed.
    #[error("capture on {iface}: {reason}")]
    Capture { iface: String, reason: String },

    /// The async runtime the run needs could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),

    /// A signal handler could not be installed.
    #[error("cannot watch for {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },

    /// The staging container's files could not be reached from this host (CNB runs make the
    /// platform's folders and read back what the builds declared through /proc/PID/root).
    #[error("cannot {what} in the staging container (through /proc/PID/root of its first process): {source}")]
    ContainerFiles {
        what: String,
        source: std::io::Error,
    },

    /// A bug: a panic or a task that died. What the run created was removed.
    #[error("airgap-check hit an internal error ({0}); this is a bug, please report it; what the run created was removed")]
    Internal(String),

    /// A signal (Ctrl-C, SIGTERM) stopped the run; everything created was removed.
    #[error("interrupted by {signal}; the run was stopped and everything it created removed")]
    Interrupted { signal: &'static str },
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Unreadable { .. }
            | Error::Read { .. }
            | Error::WriteFile { .. }
            | Error::BadCapture { .. }
            | Error::UnsupportedLinkType { .. }
            | Error::Allowlist { .. }
            | Error::Config { .. }
            | Error::Manifest { .. }
            | Error::BadArgument { .. }
            | Error::Write { .. }
            | Error::BadInput { .. } => 2,
            Error::CaptureRead { .. }
            | Error::Engine(_)
            | Error::Runtime(_)
            | Error::Signal { .. }
            | Error::Internal(_)
            | Error::StackImage { .. }
            | Error::Privilege { .. }
            | Error::Sandbox(_)
            | Error::Capture { .. }
            | Error::ContainerFiles { .. }
            | Error::Interrupted { .. } => 3,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
