//! What DNS said in the capture: questions asked, and which names lead to which addresses.
//! Every message is read once (a bounded memo of recent ones) and held within [`MAX_DNS_NAMES`].

use std::net::IpAddr;

use ahash::AHashMap;

use crate::flows::flow::{namebits, Flow};
use crate::flows::key::Micros;
use crate::flows::naming;
use crate::flows::table::FlowTable;

/// One name and type the capture asked DNS for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsQuery {
    /// Lowercase, no trailing dot.
    pub name: String,
    /// "A", "AAAA", … ("TYPE65534" when unknown).
    pub qtype: String,
    /// How many queries asked it.
    pub count: u64,
    pub first_seen: Micros,
}

/// What DNS said in the capture: the questions asked, and which names lead to which addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSeen {
    /// In order of first query.
    pub queries: Vec<DnsQuery>,
    /// Each address DNS answers gave, with the names that led to it (the name asked first, then
    /// each CNAME on the way), lowercase.
    pub answers: AHashMap<IpAddr, Vec<String>>,
    /// Query names and answer names not recorded because [`MAX_DNS_NAMES`] were held already.
    pub dropped: u64,
}

impl DnsSeen {
    /// The names DNS gave this address (an IPv4-mapped IPv6 address also gets its IPv4 address's).
    pub fn names_for(&self, addr: IpAddr) -> impl Iterator<Item = &str> {
        let canonical = addr.to_canonical();
        let mapped = (canonical != addr).then(|| self.answers.get(&canonical));
        self.answers
            .get(&addr)
            .into_iter()
            .chain(mapped.flatten())
            .flatten()
            .map(String::as_str)
    }
}

/// The most DNS names held (query entries plus answer names), whatever the capture holds.
pub const MAX_DNS_NAMES: usize = 100_000;
/// The most names held for one address.
const MAX_NAMES_PER_ADDRESS: usize = 32;

#[derive(Default)]
pub(crate) struct DnsState {
    pub(super) index: AHashMap<(String, String), u32>,
    pub(super) queries: Vec<DnsQuery>,
    pub(super) answers: AHashMap<IpAddr, Vec<String>>,
    pub(super) names: usize,
    pub(super) dropped: u64,
}

impl DnsState {
    /// The entry for a question, made (with no query counted yet) when new; `None` when
    /// [`MAX_DNS_NAMES`] are held already.
    fn entry(&mut self, name: String, qtype: String, ts: Micros) -> Option<u32> {
        let key = (name, qtype);
        if let Some(&i) = self.index.get(&key) {
            return Some(i);
        }
        if self.names >= MAX_DNS_NAMES {
            return None;
        }
        self.names += 1;
        let i = self.queries.len() as u32;
        self.index.insert(key.clone(), i);
        self.queries.push(DnsQuery {
            name: key.0,
            qtype: key.1,
            count: 0,
            first_seen: ts,
        });
        Some(i)
    }

    /// Count one query of the question at `entry` (a dropped one when `None`).
    fn count(&mut self, entry: Option<u32>, ts: Micros) {
        match entry.and_then(|i| self.queries.get_mut(i as usize)) {
            Some(q) => {
                q.count += 1;
                q.first_seen = q.first_seen.min(ts);
            }
            None => self.dropped += 1,
        }
    }

    #[cfg(test)]
    fn query(&mut self, name: String, qtype: String, ts: Micros) {
        let e = self.entry(name, qtype, ts);
        self.count(e, ts);
    }

    fn answer(&mut self, addr: IpAddr, names: &[String]) {
        let held = self.answers.entry(addr).or_default();
        for n in names {
            if held.contains(n) {
                continue;
            }
            if self.names >= MAX_DNS_NAMES || held.len() >= MAX_NAMES_PER_ADDRESS {
                self.dropped += 1;
                continue;
            }
            self.names += 1;
            held.push(n.clone());
        }
    }
}

/// A DNS message as read once: the same bytes (after the ID) come again and again in a capture
/// (retries, A and AAAA, every build asking for the same mirror), and reading one costs about a
/// microsecond, so [`FlowTable`] keeps what the last few thousand said.
pub(crate) enum SeenDns {
    /// A query with questions: the first as (type, name), and each one's entry in the DNS state.
    Query {
        first: (String, String),
        entries: Vec<Option<u32>>,
    },
    /// A response; `taken` once its answers were taken in (taking them again changes nothing).
    Response {
        answers: Vec<(IpAddr, Vec<String>)>,
        taken: bool,
    },
    /// Not DNS, or a query without a question.
    Other,
}

/// DNS messages remembered at most (then forgotten all at once), and the longest remembered.
const MAX_SEEN_DNS: usize = 4096;
const MAX_SEEN_DNS_BYTES: usize = 512;

fn read_dns(dns: &mut DnsState, payload: &[u8], ts: Micros) -> SeenDns {
    match naming::dns(payload) {
        Some(m) if !m.is_response && !m.queries.is_empty() => SeenDns::Query {
            first: (m.queries[0].1.clone(), m.queries[0].0.clone()),
            entries: m
                .queries
                .into_iter()
                .map(|(name, qtype)| dns.entry(name, qtype, ts))
                .collect(),
        },
        Some(m) if m.is_response => SeenDns::Response {
            answers: m.answers,
            taken: false,
        },
        _ => SeenDns::Other,
    }
}

/// Take in one DNS message of a flow. Questions count wherever they go; answers only when they
/// come back to the initiator of a flow that asked (a response the capture's host sends out on
/// its own proves nothing about the names of addresses).
fn take_dns(
    dns: &mut DnsState,
    flow: &mut Flow,
    seen: &mut SeenDns,
    from_initiator: bool,
    first: bool,
    ts: Micros,
) {
    match seen {
        SeenDns::Query { first: q, entries } => {
            if from_initiator {
                flow.stats.naming |= namebits::ASKED;
                let app = flow.app.get_or_insert_with(Default::default);
                if app.dns_query.is_none() {
                    app.dns_query = Some(q.clone());
                }
            }
            for e in entries.iter() {
                dns.count(*e, ts);
            }
        }
        SeenDns::Response { answers, taken }
            if !*taken && !from_initiator && !first && flow.stats.naming & namebits::ASKED != 0 =>
        {
            for (addr, names) in answers.iter() {
                dns.answer(*addr, names);
            }
            *taken = true;
        }
        _ => {}
    }
}

impl FlowTable {
    /// One DNS message of a flow ([`take_dns`]). Only the first datagram of a UDP flow that is not
    /// on port 53 is taken as DNS, and only as a query with a question.
    pub(super) fn dns_message(
        &mut self,
        idx: u32,
        from_initiator: bool,
        ts: Micros,
        payload: &[u8],
        first: bool,
    ) {
        let Some(after_id) = payload.get(2..) else {
            return;
        };
        let Some(flow) = self.flows.get_mut(idx as usize) else {
            return;
        };
        if payload.len() > MAX_SEEN_DNS_BYTES {
            let mut seen = read_dns(&mut self.dns, payload, ts);
            return take_dns(&mut self.dns, flow, &mut seen, from_initiator, first, ts);
        }
        if !self.seen_dns.contains_key(after_id) {
            let seen = read_dns(&mut self.dns, payload, ts);
            if self.seen_dns.len() >= MAX_SEEN_DNS {
                self.seen_dns.clear();
            }
            self.seen_dns.insert(after_id.into(), seen);
        }
        if let Some(seen) = self.seen_dns.get_mut(after_id) {
            take_dns(&mut self.dns, flow, seen, from_initiator, first, ts);
        }
    }

    /// DNS over TCP: each whole length-prefixed message the segment holds.
    pub(super) fn dns_over_tcp(
        &mut self,
        idx: u32,
        from_initiator: bool,
        ts: Micros,
        mut data: &[u8],
    ) {
        while let [hi, lo, rest @ ..] = data {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let Some(msg) = rest.get(..len) else { return };
            self.dns_message(idx, from_initiator, ts, msg, false);
            data = &rest[len..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_bounded() {
        let mut d = DnsState::default();
        for i in 0..MAX_DNS_NAMES {
            d.query(format!("n{i}.example"), "A".into(), 1);
        }
        d.query("n0.example".into(), "A".into(), 0);
        assert_eq!(
            (d.queries.len(), d.dropped, d.queries[0].count),
            (MAX_DNS_NAMES, 0, 2)
        );
        d.query("one-more.example".into(), "A".into(), 2);
        d.answer("192.0.2.1".parse().unwrap(), &["x.example".into()]);
        assert_eq!(d.dropped, 2);
        let mut d = DnsState::default();
        let names: Vec<String> = (0..40).map(|i| format!("cdn{i}.example")).collect();
        d.answer("192.0.2.1".parse().unwrap(), &names);
        assert_eq!(
            (d.names, d.dropped),
            (MAX_NAMES_PER_ADDRESS, 40 - MAX_NAMES_PER_ADDRESS as u64)
        );
    }
}
