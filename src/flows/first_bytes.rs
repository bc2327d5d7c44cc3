//! A TCP flow's first bytes from its initiator, held until they show a TLS ClientHello's server
//! name, an HTTP request, or neither (at most [`MAX_FIRST_BYTES`] per flow, [`MAX_PENDING_BYTES`]
//! in all).

use crate::flows::flow::{namebits, AppInfo};
use crate::flows::naming::{self, Http, Sni};
use crate::flows::table::FlowTable;

/// A TCP flow's first bytes are read for names up to this many bytes.
pub const MAX_FIRST_BYTES: usize = 16 * 1024;
/// First bytes held at once over all flows; a flow that would go beyond is read as it stands.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// A TCP flow's first bytes while they are not enough to tell.
pub(crate) struct Pending {
    buf: Vec<u8>,
    /// The sequence number the next new byte has.
    next_seq: u32,
    /// The buffer's length at the last attempt: the next comes once it has doubled, so a flow
    /// that trickles in byte by byte costs linear, not quadratic, time.
    tried: usize,
}

impl FlowTable {
    /// Add a data segment of the initiator's to the flow's first bytes and try to name the flow.
    pub(super) fn first_bytes(&mut self, idx: u32, seq: u32, wire_len: usize, data: &[u8]) {
        let p = self.pending.entry(idx).or_insert_with(|| Pending {
            buf: Vec::new(),
            next_seq: seq,
            tried: 0,
        });
        // A retransmission repeats bytes already held: keep only what is new. A segment ahead of
        // the next byte expected leaves a hole (a segment lost or reordered): the bytes would not
        // join, so the flow is named from what it holds.
        let behind = p.next_seq.wrapping_sub(seq);
        if behind >= 1 << 31 {
            return self.decide(idx, true);
        }
        let skip = behind as usize;
        if skip >= wire_len {
            return;
        }
        let new_len = wire_len - skip;
        let data = data.get(skip..).unwrap_or_default();
        let cut_short = data.len() < new_len;
        let room = MAX_FIRST_BYTES - p.buf.len();
        let take = data.len().min(room);
        if self.pending_bytes + take > MAX_PENDING_BYTES {
            self.counts.naming_cut += 1;
            return self.decide(idx, true);
        }
        let before = p.buf.len();
        p.buf.extend_from_slice(&data[..take]);
        p.next_seq = p.next_seq.wrapping_add(new_len as u32);
        self.pending_bytes += take;
        if cut_short || p.buf.len() >= MAX_FIRST_BYTES {
            // Captured shorter than sent (snaplen), or enough read: what there is is all there is.
            return self.decide(idx, true);
        }
        // Try again when the bytes have doubled, or when they may now be whole: a TLS record as
        // long as its header says, HTTP headers that have ended.
        let whole = p.buf.len() >= tls_need(&p.buf)
            || p.buf[before.saturating_sub(3)..]
                .windows(2)
                .any(|w| w == b"\n\n" || w == b"\n\r");
        if whole || p.buf.len() >= 2 * p.tried {
            p.tried = p.buf.len();
            self.decide(idx, false);
        }
    }

    /// Try the held first bytes of a flow; `last` when no more will come. A flow that is decided
    /// gets its names and loses its buffer.
    pub(super) fn decide(&mut self, idx: u32, last: bool) {
        let buf = self.pending.get(&idx).map_or(&[][..], |p| &p.buf[..]);
        let app = match naming::tls_sni(buf) {
            Sni::Found(name) => Some(Some(AppInfo {
                sni: Some(name),
                ..AppInfo::default()
            })),
            sni => match (
                sni,
                if last {
                    naming::http_request_cut(buf)
                } else {
                    naming::http_request(buf)
                },
            ) {
                (_, Http::Found { request_line, host }) => Some(Some(AppInfo {
                    http_host: host,
                    request_line: Some(request_line),
                    ..AppInfo::default()
                })),
                (Sni::NeedMore, _) | (_, Http::NeedMore) if !last => None,
                _ => Some(None),
            },
        };
        let Some(app) = app else { return };
        if let Some(p) = self.pending.remove(&idx) {
            self.pending_bytes -= p.buf.len();
        }
        let flow = &mut self.flows[idx as usize];
        flow.stats.naming |= namebits::DONE;
        if let Some(app) = app {
            flow.app = Some(Box::new(app));
        }
    }
}

/// How many bytes a TLS ClientHello that starts `b` takes, from its record and handshake headers;
/// `usize::MAX` when `b` does not show one (only when to try again depends on it).
fn tls_need(b: &[u8]) -> usize {
    match b {
        [0x16, _, _, r0, r1, 1, h0, h1, h2, ..] => {
            let record = 5 + usize::from(u16::from_be_bytes([*r0, *r1]));
            let message = 9 + usize::from_be_bytes([0, 0, 0, 0, 0, *h0, *h1, *h2]);
            record.max(message)
        }
        [0x16, _, _, r0, r1, ..] => 5 + usize::from(u16::from_be_bytes([*r0, *r1])),
        _ => usize::MAX,
    }
}
