//! Flows → judged flows: which end of each flow is this host, which is the remote one, and the
//! allowlist rule (if any) that allows it.

use std::net::IpAddr;

use ahash::AHashMap;
use ipnet::IpNet;

use crate::flows::{is_loopback_flow, Flow, FlowKey};
/// Which addresses are "local": those in `local` when given (an IPv4 prefix also names the
/// IPv4-mapped IPv6 form of its addresses), otherwise, per IP version, the address present in every
/// flow of that version (ties go to the one that initiated most, then the lowest). Loopback flows
/// are left out of that count: a capture on "any" sees them beside the host's own traffic. A
/// version with no such address has no local address; see [`remote_end`] for what that means.
pub fn local_addresses(flows: &[Flow], local: &[IpNet]) -> Vec<IpAddr> {
    if !local.is_empty() {
        let mut out: Vec<IpAddr> = flows
            .iter()
            .flat_map(|f| [f.key.src, f.key.dst])
            .filter(|a| {
                local
                    .iter()
                    .any(|n| crate::verdict::policy::net_contains(n, *a))
            })
            .collect();
        out.sort();
        out.dedup();
        return out;
    }
    let mut seen: AHashMap<IpAddr, (u64, u64)> = AHashMap::new();
    let (mut v4, mut v6) = (0u64, 0u64);
    for f in flows.iter().filter(|f| !is_loopback_flow(&f.key)) {
        if f.key.src.is_ipv4() {
            v4 += 1;
        } else {
            v6 += 1;
        }
        let e = seen.entry(f.key.src).or_default();
        e.0 += 1;
        e.1 += 1;
        if f.key.dst != f.key.src {
            seen.entry(f.key.dst).or_default().0 += 1;
        }
    }
    let mut out = Vec::new();
    for (want_v4, total) in [(true, v4), (false, v6)] {
        if total == 0 {
            continue;
        }
        let best = seen
            .iter()
            .filter(|(a, (n, _))| a.is_ipv4() == want_v4 && *n == total)
            .max_by(|(a, (_, ia)), (b, (_, ib))| ia.cmp(ib).then(b.cmp(a)));
        if let Some((a, _)) = best {
            out.push(*a);
        }
    }
    out
}

/// The remote end of a flow (address, port): the end that is not local; when both or neither are,
/// the responder. When neither end is local the judge holds both ends against the allowlist
/// (`analysis::judge`), since either could be the remote one.
pub fn remote_end(key: &FlowKey, local: &[IpAddr]) -> (IpAddr, Option<u16>) {
    let src_local = local.contains(&key.src);
    let dst_local = local.contains(&key.dst);
    if dst_local && !src_local {
        (key.src, key.src_port)
    } else {
        (key.dst, key.dst_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::decode::{decode, LinkKind};
    use crate::flows::{FlowTable, Micros};
    use etherparse::PacketBuilder;

    const L: [u8; 4] = [10, 1, 0, 2];
    const R: [u8; 4] = [203, 0, 113, 5];

    fn syn(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, ack: bool) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, 1, 1000).syn();
        if ack {
            b = b.ack(1);
        }
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    fn feed(t: &mut FlowTable, ts: Micros, f: &[u8]) {
        t.add(ts, f.len() as u32, &decode(LinkKind::RawIp, f));
    }

    #[test]
    fn local_is_the_address_in_every_flow_per_version() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &syn(L, R, 1, 2, false));
        feed(&mut t, 2, &syn(L, [8, 8, 8, 8], 3, 4, false));
        feed(&mut t, 3, &syn([192, 168, 5, 10], L, 5, 22, false));
        let (flows, _, _) = t.finish();
        let local = local_addresses(&flows, &[]);
        assert_eq!(local, vec![IpAddr::from(L)]);
        assert_eq!(
            remote_end(&flows[2].key, &local),
            (IpAddr::from([192, 168, 5, 10]), Some(5))
        );
        // A single flow: both ends are in every flow; the initiator wins.
        let mut t = FlowTable::new();
        feed(&mut t, 1, &syn(R, L, 443, 1, true));
        let (flows, _, _) = t.finish();
        assert_eq!(local_addresses(&flows, &[]), vec![IpAddr::from(L)]);
    }
}
