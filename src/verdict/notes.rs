//! Notes: what the reader of a report must know besides the flows, each a typed value that the
//! reports render as one sentence. A note also says what it does to the verdict ([`Impact`]), so
//! the verdict rule ([`super::conclude::verdict`]) reads the notes instead of re-deriving them.

use std::fmt;

use crate::capture::file::describe_read_stop;
use crate::flows::{MAX_DNS_NAMES, MAX_PENDING_BYTES};
use crate::manifest::{Aside, NoneForStack, Unreadable};
use crate::staging::tree::Skipped;
use crate::verdict::analysis::Mode;

/// What a note does to the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    /// Worth knowing; the verdict stands.
    Informational,
    /// Something went unseen: no pass, at best inconclusive (a disallowed flow still fails).
    Untrusted,
    /// Staging itself failed: a fail.
    Fails,
    /// The sensor was never proven to see the container: inconclusive, whatever the flows say.
    Blind,
}

/// "IPv4" or "IPv6".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

impl fmt::Display for IpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpVersion::V4 => "IPv4",
            IpVersion::V6 => "IPv6",
        })
    }
}

/// One note of a report.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    // What the command knew (given to the conclusion).
    /// A file of the app or a buildpack was not staged (a FIFO, a socket, a device).
    Skipped(Skipped),
    /// A phase failed; the sentence says which and how.
    StagingFailed(String),
    /// TCP connections were refused rather than accepted (no TLS SNI or HTTP Host): why.
    TcpRefused(String),
    /// The commands behind the sinkhole's connections could not be told (every `process` is
    /// null): why.
    NotAttributed(String),
    /// Processes were still running after the last phase and were killed.
    Unwatched { processes: Vec<String>, secs: u64 },
    /// watch: what was watched, for how long, until what.
    Watched {
        container: String,
        secs: f64,
        until: String,
    },
    /// watch: the capture ended when the container's interface went away (its exit).
    InterfaceGone(String),
    /// watch: the transmit counters are the last reading before the container exited.
    CountersBeforeExit,
    /// A buildpack's scripts that are not executable: their phases will fail with exit 126.
    NotExecutable {
        buildpack: String,
        scripts: Vec<String>,
    },
    /// The run (one app of several) failed before it could observe anything.
    RunFailed(String),
    /// A buildpack's manifest.yml could not be read: its flows are not matched to dependencies.
    ManifestUnreadable(Unreadable),
    /// A buildpack's manifest lists dependencies, but none for the run's stack.
    NoDependencyForStack(NoneForStack),
    /// Something else of a manifest: entries for no stack, or a manifest.yml that is a symlink.
    Manifest(Aside),

    // What the capture says of itself (derived by the conclusion from its health).
    /// libpcap stopped before the end of the file: its message.
    ReadStopped(String),
    /// A capture with no packets, and no canary to prove it could see any.
    NoPackets,
    /// Frames whose timestamps were clamped into what the reports can write.
    TimestampsClamped(u64),
    /// The canary was not seen: why, for this mode.
    CanaryNotSeen { why: Option<String>, mode: Mode },
    /// No canary could be sent: why.
    NoCanary(String),
    /// The live capture failed: libpcap's or the sensor's words.
    CaptureFailed(String),
    /// The --pcap file could not be written whole.
    PcapNotSaved { path: String, error: String },
    /// Frames the container sent past a capture inside its namespace.
    Unseen(u64),
    /// The drop counters are the last reading before the interface went away.
    StatsStale,
    /// Packets dropped, some of them by the container's interface before the capture.
    Dropped { packets: u64, by_interface: u64 },
    /// The drop counters could not be read.
    DropsUnknown,
    /// Frames of a protocol other than IP came from a staging container (a raw socket?).
    NonIp(u64),
    /// --filter limited what was captured.
    Filtered(String),

    // What the flows say (derived by the conclusion from the flow table).
    /// Frames cut short by the snaplen.
    Truncated(u64),
    /// Frames with invalid headers.
    Invalid(u64),
    /// Nothing decoded as IP: every frame of another protocol or encapsulation.
    NothingDecoded { frames: u64, non_ip: u64 },
    /// No address of this version is in every flow of it (`given`: --local named none).
    NoLocalAddress { version: IpVersion, given: bool },
    /// Flows of this version with neither end local, judged on both ends.
    NeitherEndLocal { version: IpVersion, flows: usize },
    /// DNS names not recorded beyond [`MAX_DNS_NAMES`].
    DnsNamesDropped(u64),
    /// TCP flows named from incomplete first bytes (beyond [`MAX_PENDING_BYTES`]).
    NamingCut(u64),
}

impl Note {
    pub fn impact(&self) -> Impact {
        match self {
            Note::StagingFailed(_) => Impact::Fails,
            Note::CanaryNotSeen { .. } | Note::RunFailed(_) => Impact::Blind,
            Note::Unwatched { .. }
            | Note::ReadStopped(_)
            | Note::NoPackets
            | Note::CaptureFailed(_)
            | Note::PcapNotSaved { .. }
            | Note::Dropped { .. }
            | Note::DropsUnknown
            | Note::NonIp(_)
            | Note::Truncated(_)
            | Note::Invalid(_)
            | Note::NothingDecoded { .. } => Impact::Untrusted,
            Note::Skipped(_)
            | Note::NotExecutable { .. }
            | Note::TcpRefused(_)
            | Note::NotAttributed(_)
            | Note::Watched { .. }
            | Note::InterfaceGone(_)
            | Note::CountersBeforeExit
            | Note::ManifestUnreadable(_)
            | Note::NoDependencyForStack(_)
            | Note::Manifest(_)
            | Note::TimestampsClamped(_)
            | Note::NoCanary(_)
            | Note::Unseen(_)
            | Note::StatsStale
            | Note::Filtered(_)
            | Note::NoLocalAddress { .. }
            | Note::NeitherEndLocal { .. }
            | Note::DnsNamesDropped(_)
            | Note::NamingCut(_) => Impact::Informational,
        }
    }

    /// Whether the note says that something went unseen or unproven (the capture, not the flows).
    pub fn undermines_the_capture(&self) -> bool {
        matches!(self.impact(), Impact::Untrusted | Impact::Blind)
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn frames(n: u64) -> String {
    format!("{n} frame{}", plural(n, "", "s"))
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Skipped(s) => f.write_str(&s.describe()),
            Note::StagingFailed(why) => write!(f, "staging failed: {why}"),
            Note::TcpRefused(why) => write!(
                f,
                "TCP connections were refused rather than accepted ({why}): attempts are judged, but their TLS SNI and HTTP Host are unknown"
            ),
            Note::NotAttributed(why) => write!(
                f,
                "the commands behind the attempts could not be told ({why}): no flow names its process"
            ),
            Note::Unwatched { processes, secs } => write!(
                f,
                "{} process(es) still ran {secs} s after the last phase and were killed, so what they would have done next is unknown: {}",
                processes.len(),
                processes.join("; ")
            ),
            Note::Watched {
                container,
                secs,
                until,
            } => write!(f, "watched container {container} for {secs:.1}s, until {until}"),
            Note::InterfaceGone(e) => write!(
                f,
                "the capture ended when the container's interface went away ({e})"
            ),
            Note::NotExecutable { buildpack, scripts } => write!(
                f,
                "buildpack {buildpack}: {} not executable (a zip made without Unix modes?): the phase will fail with exit 126",
                scripts.join(", ")
            ),
            Note::RunFailed(e) => write!(f, "the run failed before it could be judged: {e}"),
            Note::CountersBeforeExit => f.write_str(
                "the container's transmit counters are as read at most 250 ms before it exited",
            ),
            Note::ManifestUnreadable(u) => u.fmt(f),
            Note::NoDependencyForStack(n) => n.fmt(f),
            Note::Manifest(a) => a.fmt(f),
            Note::ReadStopped(msg) => f.write_str(&describe_read_stop(msg)),
            Note::NoPackets => f.write_str("the capture holds no packets: it proves nothing"),
            Note::TimestampsClamped(n) => write!(
                f,
                "{n} packet timestamp(s) lay outside the years 0000-9999 (a broken or hostile capture file) and were clamped into that range: the times shown for those packets are not real"
            ),
            Note::CanaryNotSeen { why, mode } => {
                f.write_str("the canary was not seen")?;
                if let Some(w) = why {
                    write!(f, " ({w})")?;
                }
                f.write_str(match mode {
                    Mode::Stage => {
                        ": the capture did not see the container, so nothing was staged"
                    }
                    _ => ": the capture did not see the container, so nothing it sent can be vouched for",
                })
            }
            Note::NoCanary(why) => write!(
                f,
                "no canary was sent ({why}): nothing proves the capture saw the container but the traffic itself"
            ),
            Note::CaptureFailed(e) => write!(f, "the capture failed: {e}"),
            Note::PcapNotSaved { path, error } => write!(
                f,
                "the capture file {path} could not be written ({error}); it was not kept, and a run missing the evidence asked for is not a pass (the flows above were judged in full)"
            ),
            Note::Unseen(n) => write!(
                f,
                "the container's interfaces sent {n} frame(s) more than the capture inside its namespace saw (a raw socket can bypass every capture there): counted as dropped"
            ),
            Note::StatsStale => f.write_str(
                "the drop counters are as read at most a second before the interface went away",
            ),
            Note::Dropped {
                packets,
                by_interface,
            } => {
                write!(f, "the capture dropped {packets} packets")?;
                if *by_interface > 0 {
                    write!(
                        f,
                        " ({by_interface} of them dropped by the container's interface before the capture)"
                    )?;
                }
                f.write_str(": what they held is unknown")
            }
            Note::DropsUnknown => f.write_str("the capture's drop counters could not be read"),
            Note::NonIp(n) => write!(
                f,
                "{n} frame(s) of a protocol other than IP came from the container (a raw socket?) and could not be judged"
            ),
            Note::Filtered(expr) => write!(
                f,
                "only packets that pass the filter {expr:?} were captured and judged"
            ),
            Note::Truncated(n) => write!(
                f,
                "{} {} cut short (snaplen?) and could not be judged",
                frames(*n),
                plural(*n, "was", "were")
            ),
            Note::Invalid(n) => write!(
                f,
                "{} had invalid headers and could not be judged",
                frames(*n)
            ),
            Note::NothingDecoded { frames: n, non_ip } => write!(
                f,
                "none of the {} decoded as IP ({non_ip} of another protocol: a wrong link type, or IP inside PPPoE, MPLS or another encapsulation airgap-check does not read), so nothing could be judged",
                frames(*n)
            ),
            Note::NoLocalAddress {
                version: v,
                given: false,
            } => write!(
                f,
                "no {v} address is present in every {v} flow, so this host's {v} address is unknown: each {v} flow is allowed only when both of its ends are (name this host with --local)"
            ),
            Note::NoLocalAddress {
                version: v,
                given: true,
            } => write!(
                f,
                "--local names no {v} address seen in the capture: each {v} flow is allowed only when both of its ends are"
            ),
            Note::NeitherEndLocal { version: v, flows } => {
                let one = *flows == 1;
                write!(
                    f,
                    "{flows} {v} flow{} neither end in --local: {} allowed only when both of {} ends are",
                    if one { " has" } else { "s have" },
                    if one { "it is" } else { "each is" },
                    if one { "its" } else { "their" },
                )
            }
            Note::DnsNamesDropped(n) => write!(
                f,
                "{n} DNS name{} not recorded: at most {MAX_DNS_NAMES} are held, so some questions are missing from dns_queries and some addresses may lack their names",
                plural(*n, " was", "s were")
            ),
            Note::NamingCut(n) => write!(
                f,
                "{n} TCP flow{} named from incomplete first bytes: {} MiB of unfinished requests were held already, so their TLS server name or HTTP Host may be missing",
                plural(*n, " was", "s were"),
                MAX_PENDING_BYTES >> 20
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a manifest says never changes a verdict.
    #[test]
    fn manifest_notes_are_informational() {
        let symlinked = Note::Manifest(Aside::Symlinked {
            buildpack: 1,
            source: "bp".into(),
        });
        assert_eq!(symlinked.impact(), Impact::Informational);
        assert_eq!(
            symlinked.to_string(),
            "buildpack 1 (bp): manifest.yml is a symlink, not read (expected a regular file of the buildpack): its dependencies are not matched to flows"
        );
    }

    #[test]
    fn notes_read_as_the_sentences_the_reports_carry() {
        assert_eq!(
            Note::Truncated(5).to_string(),
            "5 frames were cut short (snaplen?) and could not be judged"
        );
        assert_eq!(
            Note::Invalid(1).to_string(),
            "1 frame had invalid headers and could not be judged"
        );
        assert_eq!(
            Note::Dropped {
                packets: 3,
                by_interface: 0
            }
            .to_string(),
            "the capture dropped 3 packets: what they held is unknown"
        );
        assert!(Note::Dropped {
            packets: 3,
            by_interface: 2
        }
        .to_string()
        .contains("(2 of them dropped by the container's interface before the capture)"));
        assert!(Note::CanaryNotSeen {
            why: Some("to 10.99.0.1:9: not seen".into()),
            mode: Mode::Stage
        }
        .to_string()
        .ends_with("so nothing was staged"));
    }

    #[test]
    fn what_a_note_does_to_the_verdict() {
        assert_eq!(Note::NoPackets.impact(), Impact::Untrusted);
        assert_eq!(Note::StagingFailed("x".into()).impact(), Impact::Fails);
        assert_eq!(
            Note::CanaryNotSeen {
                why: None,
                mode: Mode::Watch
            }
            .impact(),
            Impact::Blind
        );
        assert_eq!(Note::Filtered("tcp".into()).impact(), Impact::Informational);
        assert!(!Note::StagingFailed("x".into()).undermines_the_capture());
        // Explaining never changes a verdict.
        let unattributed = Note::NotAttributed("sock_diag: permission denied".into());
        assert_eq!(unattributed.impact(), Impact::Informational);
        assert_eq!(
            unattributed.to_string(),
            "the commands behind the attempts could not be told (sock_diag: permission denied): no flow names its process"
        );
    }
}
