//! The canary: a datagram sent from inside the container's namespace, on every run, to prove that
//! the capture sees what the container sends. A run whose canary is never seen proves nothing.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::capture::live::LiveCapture;
use crate::capture::sandbox::{self, SandboxError};
use crate::error::Result;

/// The port the canary is sent to (the discard service).
pub const CANARY_PORT: u16 = 9;

/// How the capture recognises the canary: `payload` as the UDP payload to port 9, from and to one
/// of `paths` (source, destination). It is counted as the canary, not as a flow.
#[derive(Clone, Debug)]
pub struct Canary {
    pub payload: Vec<u8>,
    pub paths: Vec<(std::net::IpAddr, std::net::IpAddr)>,
}

/// Where the canary goes, or why none can be sent.
#[derive(Clone, Debug, Default)]
pub struct CanaryPlan {
    /// What the capture recognises; `None` when no canary can be sent.
    pub canary: Option<Canary>,
    /// Where it is sent (empty: none can be).
    pub to: Vec<SocketAddr>,
    /// Why none can be sent.
    pub none_because: Option<String>,
}

/// What the canary showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryOutcome {
    /// Seen for every family it was sent over; `None`: none could be sent.
    pub seen: Option<bool>,
    /// Why it was not seen (per target), or why none could be sent.
    pub problem: Option<String>,
    /// "IPv4 and IPv6", "IPv4", "IPv6": the families it was sent over.
    pub families: &'static str,
}

impl CanaryPlan {
    /// The canary of a container on a real network: to its gateway's discard port, and only when
    /// this host holds the gateway's address (so the canary never leaves the machine).
    pub fn to_gateway(ns: &File, gateway: Option<Ipv4Addr>, payload: &[u8]) -> Result<CanaryPlan> {
        let Some(gw) = gateway else {
            return Ok(CanaryPlan::none(
                "the container has no IPv4 default gateway to send a canary to".into(),
            ));
        };
        if !crate::capture::point::local_addresses().contains(&IpAddr::V4(gw)) {
            return Ok(CanaryPlan::none(format!(
                "the container's gateway {gw} is not an address of this host, and the canary must not leave it"
            )));
        }
        let to = SocketAddr::from((gw, CANARY_PORT));
        let (src, _) = canary_path(ns, to)?;
        Ok(CanaryPlan {
            canary: Some(Canary {
                payload: payload.to_vec(),
                paths: vec![(src, to.ip())],
            }),
            to: vec![to],
            none_because: None,
        })
    }

    fn none(why: String) -> CanaryPlan {
        CanaryPlan {
            none_because: Some(why),
            ..CanaryPlan::default()
        }
    }

    fn families(&self) -> &'static str {
        match (
            self.to.iter().any(|t| t.is_ipv4()),
            self.to.iter().any(|t| t.is_ipv6()),
        ) {
            (true, true) => "IPv4 and IPv6",
            (true, false) => "IPv4",
            _ => "IPv6",
        }
    }

    /// Send the canary from inside the container's namespace `ns` to each target until the
    /// capture has seen it for every family targeted, for at most 5 seconds.
    pub async fn send(&self, ns: &File, capture: &LiveCapture) -> Result<CanaryOutcome> {
        let Some(canary) = &self.canary else {
            return Ok(CanaryOutcome {
                seen: None,
                problem: self.none_because.clone(),
                families: self.families(),
            });
        };
        let (v4, v6) = send_until_seen(ns, &self.to, capture, &canary.payload).await?;
        let seen_for = |t: &SocketAddr| if t.is_ipv4() { v4 } else { v6 };
        let all = !self.to.is_empty() && self.to.iter().all(seen_for);
        let problem = (!all).then(|| {
            self.to
                .iter()
                .map(|t| {
                    let seen = if seen_for(t) { "seen" } else { "not seen" };
                    format!("to {t}: {seen}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        });
        Ok(CanaryOutcome {
            seen: Some(all),
            problem,
            families: self.families(),
        })
    }
}

async fn send_until_seen(
    ns: &File,
    targets: &[SocketAddr],
    capture: &LiveCapture,
    payload: &[u8],
) -> Result<(bool, bool)> {
    let need_v4 = targets.iter().any(|t| t.is_ipv4());
    let need_v6 = targets.iter().any(|t| t.is_ipv6());
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (ns2, p, to) = (ns.try_clone().ok(), payload.to_vec(), targets.to_vec());
        let sent = tokio::task::spawn_blocking(move || match ns2 {
            Some(ns2) => send_from(&ns2, &to, &p),
            None => Ok(()),
        })
        .await;
        if let Ok(Err(e)) = sent {
            return Err(e.into());
        }
        // Look often (the capture hands a block over within a few tens of milliseconds); send
        // again every 150 ms.
        let resend = Instant::now() + Duration::from_millis(150);
        while Instant::now() < resend {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let seen = capture.canary_seen();
            if ((seen.0 || !need_v4) && (seen.1 || !need_v6)) || Instant::now() >= until {
                return Ok(seen);
            }
        }
    }
}

/// Where a canary sent from inside `ns` to `to` leaves from (no packet is sent to find out).
pub fn canary_path(ns: &File, to: SocketAddr) -> Result<(IpAddr, SocketAddr), SandboxError> {
    sandbox::in_netns(ns, || {
        let bind: SocketAddr = if to.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = std::net::UdpSocket::bind(bind)?;
        s.connect(to)?;
        s.local_addr().map(|l| (l.ip(), to))
    })?
    .map_err(|e| SandboxError {
        step: "canary",
        reason: format!("no route from the container to {to}: {e}"),
    })
}

/// Send `payload` from inside `ns` to each target (one datagram each).
pub fn send_from(ns: &File, targets: &[SocketAddr], payload: &[u8]) -> Result<(), SandboxError> {
    sandbox::in_netns(ns, || {
        for to in targets {
            let bind: SocketAddr = if to.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            if let Ok(s) = std::net::UdpSocket::bind(bind) {
                let _ = s.send_to(payload, to);
            }
        }
    })
}
