//! The sensor: a live capture of one container and what proves it, shared by the sealed run, the
//! observe mode and `watch`. It is armed before anything of the buildpack runs, proven by the
//! canary, counts what the container's own interfaces sent and dropped, and at the end hands back
//! the flow table with the capture's health.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::capture::attribution::{Attributed, Attribution, Attributor};
use crate::capture::canary::{Canary, CanaryOutcome, CanaryPlan, CANARY_PORT};
use crate::capture::live::{CaptureSpec, LiveCapture, LiveResult};
use crate::capture::point::{self, CapturePoint, TxCounters};
use crate::capture::sandbox::{self, Sandbox, CONTAINER_V4, CONTAINER_V6, SINK_V4, SINK_V6};
use crate::capture::sinkhole::Sinkhole;
use crate::error::{Error, Result};
use crate::flows::FlowTable;
use crate::progress::Progress;
use crate::report;
use crate::verdict::analysis::CaptureHealth;

/// What the sensor is asked to keep and look at.
pub struct SensorOptions<'a> {
    /// The canary's payload (it names the run).
    pub payload: Vec<u8>,
    /// Write every packet to this capture file (through a temporary file beside it).
    pub pcap: Option<&'a Path>,
    /// A libpcap filter: only what passes it is captured.
    pub filter: Option<&'a str>,
}

/// A sealed run's own network: the sandbox, its sinkhole and the sinkhole's attribution, ended
/// together.
struct Sealed {
    sinkhole: Sinkhole,
    attribution: Option<Attribution>,
    sandbox: Sandbox,
}

/// A live capture of one container, and what proves it.
pub struct Sensor {
    capture: LiveCapture,
    /// The container's network namespace: the canary is sent from there, its counters read there.
    container_ns: File,
    canary: CanaryPlan,
    outcome: Option<CanaryOutcome>,
    /// The container's own addresses, for the judge.
    local: Vec<IpNet>,
    /// Where the capture runs, for the reports.
    point: String,
    /// The capture can tell the container's frames apart (to account for every frame it sent).
    counts_sent: bool,
    /// The capture runs inside the container's namespace, where a frame is seen before the
    /// interface counts it: the window of counted frames closes at each counter reading. Outside,
    /// a frame is seen after it was counted, so the window stays open for those in flight.
    inside: bool,
    /// Why TCP connections are refused rather than accepted (sealed runs), if they are.
    pub tcp_sink_error: Option<String>,
    /// Why the commands behind the sinkhole's connections cannot be told (sealed runs), if so.
    pub attribution_error: Option<String>,
    sealed: Option<Sealed>,
    pcap: Option<(PathBuf, tempfile::NamedTempFile)>,
    filter: Option<String>,
    tx_base: Option<TxCounters>,
    tx_last: Option<TxCounters>,
}

/// What the sensor handed back at the end.
pub struct Sensed {
    pub table: FlowTable,
    pub health: CaptureHealth,
    /// The container's addresses.
    pub local: Vec<IpNet>,
    /// Names the sinkhole handed out (sealed runs).
    pub handed_out: Vec<(String, Vec<IpAddr>)>,
    /// The connections and lookups the sinkhole attributed to a process (sealed runs).
    pub processes: Vec<Attributed>,
    /// The capture's own error (libpcap's), when it stopped on one, and when.
    pub capture_error: Option<(String, Option<std::time::SystemTime>)>,
    /// The container's transmit counters could not be read (`health.error` says so too).
    pub counters_unread: bool,
    /// The capture file to move into place, when one was asked for and written whole.
    pub pcap: Option<(PathBuf, tempfile::NamedTempFile)>,
}

impl Sensor {
    /// Seal the container whose first process is `pid` into a sink namespace, start the sinkhole
    /// there and arm the capture on the sink's end of the veth. `tag` names the interfaces.
    pub async fn sealed(
        pid: u32,
        tag: &str,
        opts: &SensorOptions<'_>,
        log: &Progress,
    ) -> Result<Sensor> {
        let tag = tag.to_string();
        let sandbox = tokio::task::spawn_blocking(move || Sandbox::seal(pid, &tag))
            .await
            .map_err(|e| Error::Internal(format!("the sealing task died: {e}")))??;
        log.line(&format!(
            "sealed: container {CONTAINER_V4} / {CONTAINER_V6} → sink {SINK_V4} / {SINK_V6}, no route out"
        ));
        if let Some(e) = &sandbox.tcp_sink_error {
            log.warn(&format!(
                "TCP connections will be refused, not accepted, so their first bytes (TLS SNI, HTTP Host) cannot name them: {e}"
            ));
        }
        // Best effort: without it, flows simply carry no process (and a note says why).
        let (who, attribution, attribution_error) =
            match start_attribution(&sandbox.container, pid).await {
                Ok((who, attribution)) => (Some(who), Some(attribution), None),
                Err(e) => {
                    log.line(&format!(
                        "the commands behind attempts will not be known: {e}"
                    ));
                    (None, None, Some(e))
                }
            };
        let sinkhole = Sinkhole::start(&sandbox.sink, who).await?;
        let canary = CanaryPlan {
            canary: Some(Canary {
                payload: opts.payload.clone(),
                paths: vec![
                    (IpAddr::V4(CONTAINER_V4), IpAddr::V4(SINK_V4)),
                    (IpAddr::V6(CONTAINER_V6), IpAddr::V6(SINK_V6)),
                ],
            }),
            to: vec![
                SocketAddr::from((SINK_V4, CANARY_PORT)),
                SocketAddr::from((SINK_V6, CANARY_PORT)),
            ],
            none_because: None,
        };
        let pcap = pcap_file(opts.pcap)?;
        let sender = point::container_mac(pid, "eth0");
        let capture = LiveCapture::start(CaptureSpec {
            ns: Some(clone_ns(&sandbox.sink, &sandbox.sink_if)?),
            iface: sandbox.sink_if.clone(),
            canary: canary.canary.clone(),
            save: pcap.as_ref().map(|(_, t)| t.path().to_path_buf()),
            filter: opts.filter.map(str::to_string),
            sender,
        })?;
        log.line(&format!("capture armed on {}", sandbox.sink_if));
        Ok(Sensor {
            capture,
            container_ns: clone_ns(&sandbox.container, &sandbox.sink_if)?,
            canary,
            outcome: None,
            local: vec![
                IpAddr::V4(CONTAINER_V4).into(),
                IpAddr::V6(CONTAINER_V6).into(),
            ],
            point: format!(
                "sink end {} of the sealed container's veth (outside the container)",
                sandbox.sink_if
            ),
            counts_sent: sender.is_some() && opts.filter.is_none(),
            inside: false,
            tcp_sink_error: sandbox.tcp_sink_error.clone(),
            attribution_error,
            sealed: Some(Sealed {
                sinkhole,
                attribution,
                sandbox,
            }),
            pcap,
            filter: opts.filter.map(str::to_string),
            tx_base: None,
            tx_last: None,
        })
    }

    /// Observe the container whose first process is `pid` on its real network: capture where its
    /// packets can be seen (the host end of its veth, else inside its namespace), and aim the
    /// canary at its gateway when this host holds it.
    pub async fn observing(pid: u32, opts: &SensorOptions<'_>) -> Result<Sensor> {
        let (at, ns, local, gateway) = tokio::task::spawn_blocking(move || {
            let at = point::capture_point(pid)?;
            let ns = sandbox::netns_of_pid(pid)?;
            let local = point::addresses_in(&ns)?;
            Ok::<_, Error>((at, ns, local, point::default_gateway(pid)))
        })
        .await
        .map_err(|e| Error::Internal(format!("the capture-point task died: {e}")))??;
        let canary = CanaryPlan::to_gateway(&ns, gateway, &opts.payload)?;
        let pcap = pcap_file(opts.pcap)?;
        let CapturePoint {
            ns: capture_ns,
            iface,
            host_side: _,
            describe,
            container_if,
        } = at;
        let sender = container_if.and_then(|i| point::container_mac(pid, &i));
        // Outside the container its frames are told by its address; inside, by their direction.
        let inside = capture_ns.is_some();
        let counts_sent = (sender.is_some() || inside) && opts.filter.is_none();
        let capture = LiveCapture::start(CaptureSpec {
            ns: capture_ns,
            iface,
            canary: canary.canary.clone(),
            save: pcap.as_ref().map(|(_, t)| t.path().to_path_buf()),
            filter: opts.filter.map(str::to_string),
            sender,
        })?;
        Ok(Sensor {
            capture,
            container_ns: ns,
            canary,
            outcome: None,
            local: local.into_iter().map(IpNet::from).collect(),
            point: describe,
            counts_sent,
            inside,
            tcp_sink_error: None,
            attribution_error: None,
            sealed: None,
            pcap,
            filter: opts.filter.map(str::to_string),
            tx_base: None,
            tx_last: None,
        })
    }

    /// Where the capture runs, for the reader.
    pub fn point(&self) -> &str {
        &self.point
    }

    /// Send the canary until the capture has seen it; then count, from now on, what the
    /// container's interfaces send (frames they drop never reach the capture).
    pub async fn prove(&mut self) -> Result<CanaryOutcome> {
        let outcome = self.canary.send(&self.container_ns, &self.capture).await?;
        self.outcome = Some(outcome.clone());
        self.capture.count_sent_from_now();
        self.tx_base = point::tx_counters_in(&self.container_ns);
        self.tx_last = self.tx_base;
        Ok(outcome)
    }

    /// Read the container's transmit counters for the last time, its processes killed: a reading
    /// that fails (or goes backwards) leaves them unknown, and the capture cannot be vouched for.
    pub fn read_final_counters(&mut self) {
        let now = point::tx_counters_in(&self.container_ns);
        let monotonic = match (now, self.tx_last) {
            (Some(n), Some(l)) => n.packets >= l.packets && n.dropped >= l.dropped,
            _ => false,
        };
        self.tx_last = now.filter(|_| monotonic);
        if self.inside {
            self.capture.count_sent_until_now();
        }
    }

    /// Read the container's transmit counters now, while it runs (watch: an exited container's
    /// interfaces are gone, and the last reading before that is what is known).
    pub fn read_counters(&mut self) {
        if let Some(now) = point::tx_counters_in(&self.container_ns) {
            // An interface that vanished between two looks (an exit) must not lower them.
            let monotonic = self
                .tx_last
                .is_none_or(|l| now.packets >= l.packets && now.dropped >= l.dropped);
            if monotonic {
                self.tx_last = Some(now);
                if self.inside {
                    self.capture.count_sent_until_now();
                }
            }
        }
    }

    /// Whether the capture has stopped on an error while the container runs.
    pub fn failed(&self) -> bool {
        self.capture.failed()
    }

    /// Stop the capture, drain it, take down the sealed network, and account for every packet the
    /// container sent that the capture did not see.
    pub async fn finish(self) -> Result<Sensed> {
        let Sensor {
            capture,
            container_ns: _,
            canary: _,
            outcome,
            local,
            point,
            counts_sent,
            inside: _,
            tcp_sink_error: _,
            attribution_error: _,
            sealed,
            pcap,
            filter,
            tx_base,
            tx_last,
        } = self;
        let tx = tx_base.zip(tx_last).map(|(a, b)| b.since(a));
        let expected = tx.filter(|_| counts_sent).map(|t| t.packets);
        let live = tokio::task::spawn_blocking(move || capture.finish(expected))
            .await
            .map_err(|e| Error::Internal(format!("the capture task died: {e}")))??;
        let (handed_out, processes) = match sealed {
            Some(Sealed {
                sinkhole,
                attribution,
                sandbox,
            }) => {
                let ended = tokio::task::spawn_blocking(move || end(sinkhole, attribution))
                    .await
                    .map_err(|e| Error::Internal(format!("the sinkhole's end failed: {e}")));
                drop(sandbox);
                ended?
            }
            None => (Vec::new(), Vec::new()),
        };
        let capture_error = live.error.clone().map(|e| (e, live.error_at));
        let (table, mut health, save_error) = health_of(live, tx, counts_sent);
        health.point = point;
        health.filter = filter;
        if let Some(o) = outcome {
            health.canary_seen = o.seen;
            health.canary_problem = o.problem;
        }
        let pcap = match (pcap, save_error) {
            (Some((path, _)), Some(e)) => {
                health.save_error = Some((path.display().to_string(), e));
                None
            }
            (p, _) => p,
        };
        Ok(Sensed {
            table,
            health,
            local,
            handed_out,
            processes,
            capture_error,
            counters_unread: tx.is_none(),
            pcap,
        })
    }
}

/// The capture's health: libpcap's drops, plus the container interface's own drops before the
/// capture, plus frames it sent past a capture inside its namespace.
fn health_of(
    live: LiveResult,
    tx: Option<TxCounters>,
    counts_sent: bool,
) -> (FlowTable, CaptureHealth, Option<String>) {
    let unseen = point::unseen_by(tx, &live, counts_sent);
    let by_interface = tx.map_or(0, |t| t.dropped);
    let mut error = live.error;
    if tx.is_none() {
        error.get_or_insert("the container interface's counters could not be read".into());
    }
    let health = CaptureHealth {
        link_type: live.link_type,
        dropped: live.dropped.map(|d| d + by_interface + unseen),
        dropped_by_interface: by_interface,
        unseen,
        stats_stale: live.stats_stale,
        first_ts: live.first_ts,
        error,
        ..CaptureHealth::default()
    };
    (live.table, health, live.save_error)
}

/// End the sinkhole, then its attribution, their threads joined: the names it handed out and the
/// attributions. Blocks: call it off the async runtime's workers.
fn end(
    mut sinkhole: Sinkhole,
    attribution: Option<Attribution>,
) -> (Vec<(String, Vec<IpAddr>)>, Vec<Attributed>) {
    // The sinkhole first: once its thread has ended nothing asks any more, so the attribution's
    // thread answers what was asked, and ends.
    sinkhole.stop();
    let processes = attribution.map(Attribution::finish).unwrap_or_default();
    (sinkhole.handed_out(), processes)
}

/// Start the attribution of the sinkhole's connections in the container (its first process:
/// `init`), off the runtime's workers (it waits for its thread to enter the namespace).
async fn start_attribution(
    container: &File,
    init: u32,
) -> std::result::Result<(std::sync::Arc<Attributor>, Attribution), String> {
    let ns = container.try_clone().map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || Attributor::start(&ns, init))
        .await
        .map_err(|e| format!("the attribution task died: {e}"))?
}

/// A temporary capture file beside `pcap`, moved into place only when the reports are written.
fn pcap_file(pcap: Option<&Path>) -> Result<Option<(PathBuf, tempfile::NamedTempFile)>> {
    pcap.map(|p| Ok((p.to_path_buf(), report::pcap_tempfile(p)?)))
        .transpose()
}

fn clone_ns(ns: &File, iface: &str) -> Result<File> {
    ns.try_clone().map_err(|e| Error::Capture {
        iface: iface.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of this process's threads.
    fn threads() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|c| c.trim_end().to_string())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn once_the_sinkhole_has_ended_no_thread_of_it_remains() {
        // The sinkhole in a namespace of its own (needs root, as sealed runs do), the attribution
        // in this one.
        let sink = sandbox::new_netns().expect("a new network namespace (root)");
        let here = File::open("/proc/thread-self/ns/net").unwrap();
        let (who, attribution) = start_attribution(&here, std::process::id()).await.unwrap();
        let sinkhole = Sinkhole::start(&sink, Some(who)).await.unwrap();
        let running = threads();
        for t in ["attribution", "sinkhole"] {
            assert!(running.iter().any(|r| r == t), "{t} in {running:?}");
        }
        let (names, processes) =
            tokio::task::spawn_blocking(move || end(sinkhole, Some(attribution)))
                .await
                .unwrap();
        assert_eq!((names.len(), processes.len()), (0, 0));
        let left = threads();
        assert!(
            !left.iter().any(|t| t == "attribution" || t == "sinkhole"),
            "{left:?}"
        );
    }
}
