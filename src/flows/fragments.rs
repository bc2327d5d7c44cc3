//! IP fragments: later fragments join the flow of their first; those whose first never comes
//! become flows of their own with unknown ports. The map of open fragment ids is bounded.

use std::net::IpAddr;

use crate::flows::flow::bump;
use crate::flows::flow::FlowStats;
use crate::flows::key::{FlowKey, Micros};
use crate::flows::table::FlowTable;

/// A datagram's fragments share (src, dst, protocol, id) in IPv4 (RFC 791) and (src, dst, id) in
/// IPv6 (RFC 8200), where the protocol is only known from the first fragment: `proto` is 0 there.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) proto: u8,
    pub(crate) id: u32,
}

#[derive(Clone, Copy)]
pub(crate) struct FragEntry {
    flow: Option<u32>,
    /// The protocol of the later fragments seen before any first fragment (for orphan flows).
    proto: u8,
    packets: u64,
    bytes: u64,
    first: Micros,
    last: Micros,
}

/// Fragment ids are held until this many are open, then orphans are turned into flows and the map
/// is emptied: memory stays bounded whatever the capture holds.
pub(crate) const MAX_FRAGMENT_IDS: usize = 65_536;

impl FlowTable {
    pub(super) fn first_fragment(&mut self, fk: FragKey, idx: u32) {
        let pending = self.frags.insert(
            fk,
            FragEntry {
                flow: Some(idx),
                proto: 0,
                packets: 0,
                bytes: 0,
                first: 0,
                last: 0,
            },
        );
        if let Some(p) = pending.filter(|p| p.flow.is_none()) {
            let flow = &mut self.flows[idx as usize];
            let from_initiator = flow.key.src == fk.src;
            add_many(&mut flow.stats, &p, from_initiator);
        }
        self.bound_fragments();
    }

    pub(super) fn later_fragment(&mut self, fk: FragKey, proto: u8, ts: Micros, len: u64) {
        let e = self.frags.entry(fk).or_insert(FragEntry {
            flow: None,
            proto,
            packets: 0,
            bytes: 0,
            first: ts,
            last: ts,
        });
        match e.flow {
            Some(i) => {
                let flow = &mut self.flows[i as usize];
                let from_initiator = flow.key.src == fk.src;
                bump(&mut flow.stats, ts, len, from_initiator);
            }
            None => {
                e.packets += 1;
                e.bytes += len;
                e.first = e.first.min(ts);
                e.last = e.last.max(ts);
            }
        }
        self.bound_fragments();
    }

    fn bound_fragments(&mut self) {
        if self.frags.len() > MAX_FRAGMENT_IDS {
            self.flush_fragments();
        }
    }

    /// Turn fragments whose first fragment never came into flows with unknown ports, and forget
    /// all fragment ids.
    pub(super) fn flush_fragments(&mut self) {
        let frags = std::mem::take(&mut self.frags);
        for (fk, e) in frags {
            if e.flow.is_some() || e.packets == 0 {
                continue;
            }
            self.counts.orphan_fragments += e.packets;
            let key = FlowKey {
                proto: e.proto,
                src: fk.src,
                src_port: None,
                dst: fk.dst,
                dst_port: None,
            };
            let (idx, _) = self.account(key, e.first, 0, None, false);
            let flow = &mut self.flows[idx as usize];
            // `account` counted one empty packet for the creation; replace it by the real counts.
            let from_initiator = flow.key.src == fk.src;
            if from_initiator {
                flow.stats.packets_out -= 1;
            } else {
                flow.stats.packets_in -= 1;
            }
            add_many(&mut flow.stats, &e, from_initiator);
        }
    }
}

fn add_many(s: &mut FlowStats, e: &FragEntry, from_initiator: bool) {
    if from_initiator {
        s.packets_out += e.packets;
        s.bytes_out += e.bytes;
    } else {
        s.packets_in += e.packets;
        s.bytes_in += e.bytes;
    }
    if e.packets > 0 {
        s.first_seen = s.first_seen.min(e.first);
        s.last_seen = s.last_seen.max(e.last);
    }
}
