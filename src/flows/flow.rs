//! One flow: its oriented key, its statistics, how far it got, and what its first bytes named.

use std::net::IpAddr;

use crate::flows::decode::PROTO_TCP;
use crate::flows::key::{FlowKey, Micros};

/// TCP flags seen from one side, as bits.
pub(crate) mod tcpbits {
    pub const SYN: u8 = 1;
    pub const SYNACK: u8 = 2;
    pub const RST: u8 = 4;
    pub const FIN: u8 = 8;
    pub const DATA: u8 = 16;
}

/// How far a flow got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// TCP: only SYNs from the initiator, no answer.
    SynOnly,
    /// TCP: answered by a RST (or an ICMP error) before any handshake.
    Refused,
    /// TCP: SYN answered by SYN-ACK, no payload.
    Handshake,
    /// TCP: payload carried in at least one direction.
    Data,
    /// TCP: neither SYN nor payload seen (the capture started mid-connection).
    Midstream,
    /// Not TCP: the responder sent something back.
    Answered,
    /// Not TCP: nothing came back.
    Unanswered,
    /// An ICMP error answered the flow (port or host unreachable, time exceeded).
    Unreachable,
}

impl FlowState {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::SynOnly => "syn_only",
            FlowState::Refused => "refused",
            FlowState::Handshake => "handshake",
            FlowState::Data => "data",
            FlowState::Midstream => "midstream",
            FlowState::Answered => "answered",
            FlowState::Unanswered => "unanswered",
            FlowState::Unreachable => "unreachable",
        }
    }
}

/// Per-flow statistics: "out" is initiator → responder, "in" the reverse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub(crate) tcp_out: u8,
    pub(crate) tcp_in: u8,
    /// ICMP errors received about this flow.
    pub icmp_errors: u32,
    /// Whether the orientation came from a SYN (it will not change again).
    pub(crate) syn_oriented: bool,
    /// Naming progress, [`namebits`].
    pub(crate) naming: u8,
}

/// Naming progress of a flow, as bits.
pub(crate) mod namebits {
    /// The first bytes were read (or cannot be): nothing more to look at for SNI, Host or a query.
    pub const DONE: u8 = 1;
    /// The initiator sent a DNS query: DNS responses coming back on this flow are read.
    pub const ASKED: u8 = 2;
}

impl FlowStats {
    pub fn packets(&self) -> u64 {
        self.packets_out + self.packets_in
    }

    pub fn bytes(&self) -> u64 {
        self.bytes_out + self.bytes_in
    }

    pub(crate) fn swap_direction(&mut self) {
        std::mem::swap(&mut self.packets_out, &mut self.packets_in);
        std::mem::swap(&mut self.bytes_out, &mut self.bytes_in);
        std::mem::swap(&mut self.tcp_out, &mut self.tcp_in);
    }
}

/// One flow: its oriented key, its statistics, and what its first bytes named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub stats: FlowStats,
    /// What the initiator's first bytes said; `None` when they named nothing (most flows: boxed so
    /// that they cost one pointer).
    pub app: Option<Box<AppInfo>>,
}

/// What a flow's first bytes from its initiator said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppInfo {
    /// TLS: the ClientHello's server name.
    pub sni: Option<String>,
    /// HTTP: the Host header (lowercase, no port).
    pub http_host: Option<String>,
    /// HTTP: the request line, "GET /dl/go1.22.tgz HTTP/1.1".
    pub request_line: Option<String>,
    /// DNS (UDP on any port, or TCP port 53): the first question the initiator asked, as
    /// (type, name): ("A", "odd.example.com").
    pub dns_query: Option<(String, String)>,
}

impl Flow {
    /// Whether the flow's own first bytes show a protocol that is not DNS: a TLS ClientHello or an
    /// HTTP request (DNS rules with `content: dns` then do not match it).
    pub fn carries_other_than_dns(&self) -> bool {
        self.app
            .as_deref()
            .is_some_and(|a| a.sni.is_some() || a.http_host.is_some() || a.request_line.is_some())
    }
}

impl AppInfo {
    /// The request as the reports show it: the HTTP request line, or "DNS query A name".
    pub fn request(&self) -> Option<String> {
        self.request_line.clone().or_else(|| {
            self.dns_query
                .as_ref()
                .map(|(t, n)| format!("DNS query {t} {n}"))
        })
    }

    /// The names the flow gave its responder: SNI, then Host; an address written as a name
    /// ("Host: 169.254.169.254") names nothing the address does not.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sni
            .iter()
            .chain(&self.http_host)
            .map(String::as_str)
            .filter(|n| n.parse::<IpAddr>().is_err())
    }
}

impl Flow {
    pub fn state(&self) -> FlowState {
        use tcpbits::*;
        let s = &self.stats;
        if self.key.proto == PROTO_TCP {
            if (s.tcp_out | s.tcp_in) & DATA != 0 {
                FlowState::Data
            } else if s.tcp_in & SYNACK != 0 {
                FlowState::Handshake
            } else if s.tcp_out & SYN != 0 && (s.tcp_in & RST != 0 || s.icmp_errors > 0) {
                FlowState::Refused
            } else if s.tcp_out & SYN != 0 {
                FlowState::SynOnly
            } else {
                FlowState::Midstream
            }
        } else if s.icmp_errors > 0 {
            FlowState::Unreachable
        } else if s.packets_in > 0 {
            FlowState::Answered
        } else {
            FlowState::Unanswered
        }
    }
}

pub(crate) fn bump(s: &mut FlowStats, ts: Micros, len: u64, from_initiator: bool) {
    if from_initiator {
        s.packets_out += 1;
        s.bytes_out += len;
    } else {
        s.packets_in += 1;
        s.bytes_in += len;
    }
    s.first_seen = s.first_seen.min(ts);
    s.last_seen = s.last_seen.max(ts);
}
