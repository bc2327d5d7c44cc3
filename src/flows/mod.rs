//! Packets → named flows: [`decode`] reads a frame, the [`table`] keys it by [`key::FlowKey`] into
//! a [`flow::Flow`], joining [`fragments`], reading the initiator's [`first_bytes`] and every
//! [`dns`] message, with [`naming`] parsing TLS, HTTP and DNS.

pub mod decode;
pub mod dns;
pub mod first_bytes;
pub mod flow;
pub mod fragments;
pub mod key;
pub mod naming;
pub mod table;

pub use dns::{DnsQuery, DnsSeen, MAX_DNS_NAMES};
pub use first_bytes::{MAX_FIRST_BYTES, MAX_PENDING_BYTES};
pub use flow::{AppInfo, Flow, FlowState, FlowStats};
pub use key::{is_loopback, is_loopback_flow, now_micros, FlowKey, Micros};
pub use table::{Counts, FlowTable};
