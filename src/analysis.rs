//! Flows → verdicts: the judged result every report is written from.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::flow::{local_addresses, remote_end, Counts, Flow, Micros};
use crate::policy::{Allowlist, Remote};
use crate::verdict::Verdict;

/// One flow with its judgement.
#[derive(Clone, Debug)]
pub struct Judged {
    pub flow: Flow,
    pub remote_addr: IpAddr,
    pub remote_port: Option<u16>,
    /// Names known for the remote end (DNS, SNI, Host); empty when unknown.
    pub names: Vec<String>,
    /// The allowing rule's name, or `None` when the flow is disallowed.
    pub rule: Option<String>,
    /// The staging phase the flow started in, when known.
    pub phase: Option<String>,
}

impl Judged {
    pub fn allowed(&self) -> bool {
        self.rule.is_some()
    }
}

/// How far the capture itself can be trusted.
#[derive(Clone, Debug, Default)]
pub struct CaptureHealth {
    pub link_type: String,
    /// Packets the capture dropped (live runs); `None` when not measured.
    pub dropped: Option<u64>,
    /// Whether the canary packet was seen (live runs); `None` when not applicable.
    pub canary_seen: Option<bool>,
    /// libpcap's message when the capture file ends mid-record.
    pub cut_short: Option<String>,
    /// Timestamp of the first frame; times in the console are relative to it.
    pub first_ts: Option<Micros>,
}

/// The whole judged result.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// "analyze" or "stage".
    pub mode: &'static str,
    /// The capture file (analyze) or the app (stage).
    pub input: String,
    pub allowlist: String,
    pub local: Vec<IpAddr>,
    pub flows: Vec<Judged>,
    pub counts: Counts,
    pub capture: CaptureHealth,
    pub verdict: Verdict,
    /// Things the reader must know (a capture cut short, no packets, no local address found).
    pub notes: Vec<String>,
}

/// Judge every flow on its remote end. `local_nets` overrides the local-address guess.
pub fn judge(
    flows: Vec<Flow>,
    allowlist: &Allowlist,
    local_nets: &[IpNet],
) -> (Vec<Judged>, Vec<IpAddr>) {
    let local = local_addresses(&flows, local_nets);
    let judged = flows
        .into_iter()
        .map(|flow| {
            let (addr, port) = remote_end(&flow.key, &local);
            let names = Vec::new();
            let rule = allowlist
                .judge(&Remote {
                    proto: flow.key.proto,
                    addr,
                    port,
                    names: &names,
                })
                .map(|r| r.name.clone());
            Judged {
                flow,
                remote_addr: addr,
                remote_port: port,
                names,
                rule,
                phase: None,
            }
        })
        .collect();
    (judged, local)
}

/// The verdict for judged flows and a capture of the given health: any disallowed flow is a fail;
/// otherwise a capture that cannot be trusted is inconclusive, never a pass.
pub fn verdict_for(flows: &[Judged], capture: &CaptureHealth) -> Verdict {
    if flows.iter().any(|f| !f.allowed()) {
        return Verdict::Fail;
    }
    let untrusted = capture.cut_short.is_some()
        || capture.dropped.is_some_and(|d| d > 0)
        || capture.canary_seen == Some(false);
    if untrusted {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

/// A destination: what JUnit reports one testcase for in analyze mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub proto: u8,
    pub addr: IpAddr,
    pub port: Option<u16>,
}

impl Judged {
    pub fn destination(&self) -> Destination {
        Destination {
            proto: self.flow.key.proto,
            addr: self.remote_addr,
            port: self.remote_port,
        }
    }
}

/// Flows grouped by destination, in order of each destination's first flow.
pub fn by_destination(flows: &[Judged]) -> Vec<(Destination, Vec<&Judged>)> {
    let mut order: Vec<(Destination, Vec<&Judged>)> = Vec::new();
    let mut index = ahash::AHashMap::new();
    for f in flows {
        let d = f.destination();
        let i = *index.entry(d).or_insert_with(|| {
            order.push((d, Vec::new()));
            order.len() - 1
        });
        order[i].1.push(f);
    }
    order
}
