//! The flow key: a small Copy + Hash identity, oriented from initiator to responder.

use std::net::IpAddr;

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// Now, in [`Micros`].
pub fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or(0)
}

/// The flow's identity, oriented from initiator (`src`) to responder (`dst`).
/// Ports are `None` for protocols that have none, and for TCP/UDP packets whose header was unreadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub proto: u8,
    pub src: IpAddr,
    pub src_port: Option<u16>,
    pub dst: IpAddr,
    pub dst_port: Option<u16>,
}

impl FlowKey {
    pub(crate) fn reversed(self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            src_port: self.dst_port,
            dst: self.src,
            dst_port: self.src_port,
        }
    }

    /// The same key for both directions.
    pub(crate) fn canonical(self) -> FlowKey {
        if (self.src, self.src_port) <= (self.dst, self.dst_port) {
            self
        } else {
            self.reversed()
        }
    }
}

/// Whether an address is loopback (127.0.0.0/8, ::1, or ::ffff:127.x.x.x).
pub fn is_loopback(a: IpAddr) -> bool {
    a.to_canonical().is_loopback()
}

/// Whether a flow runs over loopback: it says nothing about which host the capture is from.
pub fn is_loopback_flow(key: &FlowKey) -> bool {
    is_loopback(key.src) || is_loopback(key.dst)
}
