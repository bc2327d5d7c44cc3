//! `airgap-check watch CONTAINER`: capture a running container's traffic from outside it (or from
//! inside its namespace when its peer is not on this host), until Ctrl-C, `--duration` or its exit,
//! then judge and report as usual.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::capture::LiveCapture;
use crate::capture::{point as observe, sandbox};
use crate::cli::{parse_duration_for, WatchArgs};
use crate::commands::stage::{canary_for, preflight_privileges, run_id, send_canary, Progress};
use crate::error::{Error, Result};
use crate::report;
use crate::staging::engine as docker;
use crate::verdict::analysis::{
    decoding_problems, dns_queries, judge_named, local_notes, names_of, naming_notes,
    verdict_for_capture, verdict_with_staging, Analysis, CaptureHealth,
};
use crate::verdict::policy::Allowlist;

/// The container's exit, if it has exited.
async fn exited(d: &bollard::Docker, id: &str) -> Option<Ended> {
    let st = d
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()
        .and_then(|i| i.state);
    match st {
        Some(s) if s.running == Some(true) => None,
        Some(s) => Some(Ended::Exited(
            s.exit_code,
            s.finished_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
        )),
        None => Some(Ended::Exited(None, None)),
    }
}

/// How a watch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ended {
    Duration,
    Signal(&'static str),
    /// The container exited: its exit code and when (Docker's State.FinishedAt).
    Exited(Option<i64>, Option<std::time::SystemTime>),
    /// The canary was not seen: there is nothing to watch with.
    NoCanary,
    /// The capture stopped while the container still ran (its interface was replaced, …).
    CaptureFailed,
}

impl Ended {
    fn describe(&self, d: Option<Duration>) -> String {
        match self {
            Ended::Duration => format!(
                "--duration {}",
                humantime::format_duration(d.unwrap_or_default())
            ),
            Ended::Signal(s) => format!("{s} (stopped by the user)"),
            Ended::Exited(Some(c), _) => format!("the container exited (code {c})"),
            Ended::Exited(None, _) => "the container stopped".into(),
            Ended::NoCanary => "the canary was not seen".into(),
            Ended::CaptureFailed => "the capture failed while the container still ran".into(),
        }
    }
}

fn bad(value: &str, expected: &str) -> Error {
    Error::BadArgument {
        option: "CONTAINER",
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

pub fn run(a: &WatchArgs) -> Result<i32> {
    let allowlist = match &a.allowlist {
        Some(p) => Allowlist::load(p)?,
        None => Allowlist::default_list(),
    };
    let duration = a
        .duration
        .as_deref()
        .map(|d| parse_duration_for("--duration", d))
        .transpose()?;
    if let Some(f) = &a.filter {
        crate::capture::check_filter(f)?;
    }
    for out in [&a.json, &a.junit, &a.pcap, &a.suggest_allowlist]
        .into_iter()
        .flatten()
    {
        report::check_writable(out)?;
    }
    preflight_privileges()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Docker {
            op: "runtime",
            reason: e.to_string(),
        })?;
    let log = Progress::new(false);
    let out = rt.block_on(watch(a, allowlist, duration, &log));
    log.done();
    rt.shutdown_timeout(Duration::from_secs(2));
    out
}

async fn watch(
    a: &WatchArgs,
    allowlist: Allowlist,
    duration: Option<Duration>,
    log: &Progress,
) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |k| {
        signal(k).map_err(|e| Error::Docker {
            op: "signals",
            reason: e.to_string(),
        })
    };
    let (mut sigint, mut sigterm) = (sig(SignalKind::interrupt())?, sig(SignalKind::terminate())?);

    let d = docker::connect().await?;
    let info = match d
        .inspect_container(
            &a.container,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
    {
        Ok(i) => i,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            return Err(bad(
                &a.container,
                "no container has this name or id (see docker ps)",
            ))
        }
        Err(e) => {
            return Err(Error::Docker {
                op: "inspect container",
                reason: e.to_string(),
            })
        }
    };
    let id = info.id.clone().unwrap_or_default();
    let name = info
        .name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string();
    let state = info.state.clone().unwrap_or_default();
    let pid = state.pid.unwrap_or(0);
    if state.running != Some(true) || pid <= 0 {
        return Err(bad(
            &a.container,
            &format!(
                "the container is not running (status {}): expected a running container",
                state
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ),
        ));
    }
    let mode = info
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    if mode == "host" {
        return Err(bad(
            &a.container,
            "the container shares the host's network namespace (--network host): its packets cannot be told from the host's; expected a container with a network of its own",
        ));
    }
    if mode == "none" {
        return Err(bad(
            &a.container,
            "the container has no network (--network none): there is nothing to watch",
        ));
    }
    let pid = pid as u32;
    let short = &id[..id.len().min(12)];

    let (point, ns, local, gateway) = tokio::task::spawn_blocking(move || {
        let point = observe::capture_point(pid)?;
        let ns = sandbox::netns_of_pid(pid)?;
        let local = observe::addresses_in(&ns)?;
        Ok::<_, Error>((point, ns, local, observe::default_gateway(pid)))
    })
    .await
    .map_err(|e| Error::Docker {
        op: "watch",
        reason: e.to_string(),
    })??;
    let payload = format!("airgap-check canary {}", run_id()).into_bytes();
    let (canary, canary_to, no_canary) = canary_for(&ns, gateway, &payload)?;
    let pcap_tmp = a.pcap.as_deref().map(report::pcap_tempfile).transpose()?;
    let capture = LiveCapture::start(
        point.ns,
        &point.iface,
        canary,
        pcap_tmp.as_ref().map(|t| t.path().to_path_buf()),
        a.filter.as_deref(),
    )?;
    let started = Instant::now();
    log.line(&format!(
        "watching container {name} ({short}) on the {}; Ctrl-C to stop",
        point.describe
    ));

    let (v4, _) = send_canary(&ns, &canary_to, &capture, &payload).await?;
    let canary_seen = (!canary_to.is_empty()).then_some(v4);
    match (&canary_seen, &no_canary) {
        (Some(true), _) => log.line("canary seen: the capture sees the container"),
        (Some(false), _) => log.warn(
            "canary NOT seen: the capture does not see the container; stopping (inconclusive)",
        ),
        (None, Some(why)) => log.warn(&format!("no canary ({why}): a pass will need traffic seen")),
        (None, None) => {}
    }

    // The container's transmit counters (drops before the capture; frames sent past a capture
    // inside its namespace), read while it runs: an exited container's interfaces are gone, so the
    // last reading before the exit is what is known then.
    // Frames the capture sees leaving are counted over the same window as the counters.
    capture.count_sent_from_now();
    let tx_base = observe::tx_counters_in(&ns);
    let mut tx_last = tx_base;
    let read_tx = |last: &mut Option<observe::TxCounters>| {
        if let Some(now) = observe::tx_counters_in(&ns) {
            // An interface that vanished between the two looks (an exit) must not lower them.
            if last.is_none_or(|l| now.packets >= l.packets && now.dropped >= l.dropped) {
                *last = Some(now);
                capture.count_sent_until_now();
            }
        }
    };

    // Wait for the end: Ctrl-C, SIGTERM, --duration, or the container's exit.
    let ended = if canary_seen == Some(false) {
        Ended::NoCanary
    } else {
        let deadline = duration.map(|d| tokio::time::Instant::from_std(started + d));
        loop {
            let tick = tokio::time::sleep(Duration::from_millis(250));
            tokio::select! {
                _ = sigint.recv() => break Ended::Signal("Ctrl-C"),
                _ = sigterm.recv() => break Ended::Signal("SIGTERM"),
                _ = async {
                    match deadline {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => break Ended::Duration,
                _ = tick => {
                    match exited(&d, &id).await {
                        Some(e) => break e,
                        // The capture died under a running container: give the exit that took
                        // the interface away a second to show; otherwise stop, inconclusive.
                        None if capture.failed() => {
                            let mut end = Ended::CaptureFailed;
                            for _ in 0..10 {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                if let Some(e) = exited(&d, &id).await {
                                    end = e;
                                    break;
                                }
                            }
                            break end;
                        }
                        None => read_tx(&mut tx_last),
                    }
                }
            }
        }
    };
    let exited = matches!(ended, Ended::Exited(..));
    let watched = started.elapsed().as_secs_f64();
    log.line(&format!(
        "stopped after {watched:.1}s: {}",
        ended.describe(duration)
    ));
    if !exited {
        // Let the last packets land; the counters are read before the capture drains, so it has
        // had everything they count.
        tokio::time::sleep(Duration::from_millis(300)).await;
        read_tx(&mut tx_last);
    }
    let tx = tx_base.zip(tx_last).map(|(a, b)| b.since(a));
    let live = tokio::task::spawn_blocking(move || capture.finish())
        .await
        .map_err(|e| Error::Capture {
            iface: point.iface.clone(),
            reason: e.to_string(),
        })??;

    let mut live = live;
    let unseen = observe::unseen_by(tx, &live, point.host_side);
    live.dropped = live
        .dropped
        .map(|d| d + tx.map_or(0, |t| t.dropped) + unseen);
    let (flows, counts, dns_seen) = live.table.finish();
    let local_nets: Vec<ipnet::IpNet> = local.iter().copied().map(ipnet::IpNet::from).collect();
    let (flows, local) = judge_named(flows, &allowlist, &local_nets, &|flow, addr: IpAddr| {
        names_of(flow, addr, &dns_seen)
    });

    let mut notes = vec![format!(
        "watched container {name} ({short}) for {watched:.1}s, until {}",
        ended.describe(duration)
    )];
    // A container that exits takes its interface with it: the capture ends there, having read
    // everything that crossed it. Only then: a capture that failed before the exit (an interface
    // swapped under a running container) missed what came after, and stays a failure.
    let mut error = live.error.clone();
    let at_exit = match (&ended, live.error_at) {
        (Ended::Exited(_, Some(finished)), Some(failed)) => {
            failed + Duration::from_millis(250) >= *finished
        }
        _ => false,
    };
    if at_exit {
        notes.push(format!(
            "the capture ended when the container's interface went away ({})",
            error.take().unwrap_or_default()
        ));
    }
    if unseen > 0 {
        notes.push(observe::unseen_note(unseen));
    }
    if tx.is_none() {
        error.get_or_insert("the container interface's counters could not be read".into());
    } else if exited {
        notes.push(
            "the container's transmit counters are as read at most 250 ms before it exited".into(),
        );
    }
    if live.stats_stale {
        notes.push(
            "the drop counters are as read at most a second before the interface went away".into(),
        );
    }
    match (&canary_seen, &no_canary) {
        (Some(false), _) => notes.push(
            "the canary was not seen: the capture did not see the container, so nothing it sent can be vouched for".into(),
        ),
        (None, Some(why)) => notes.push(format!(
            "no canary was sent ({why}): nothing proves the capture saw the container but the traffic itself"
        )),
        _ => {}
    }
    if let Some(e) = &error {
        notes.push(format!("the capture failed: {e}"));
    }
    notes.extend(report::pcap_save_note(a.pcap.as_deref(), &live.save_error));
    if let Some(f) = &a.filter {
        notes.push(format!(
            "only packets that pass the filter {f:?} were captured and judged"
        ));
    }
    notes.extend(local_notes(&flows, &local, true));
    notes.extend(naming_notes(&counts, &dns_seen));
    notes.extend(decoding_problems(&counts));
    match live.dropped {
        Some(0) => {}
        Some(n) => notes.push(format!(
            "the capture dropped {n} packets: what they held is unknown"
        )),
        None => notes.push("the capture's drop counters could not be read".into()),
    }
    let health = CaptureHealth {
        link_type: live.link_type.clone(),
        dropped: live.dropped,
        canary_seen,
        cut_short: None,
        first_ts: live.first_ts,
        error: error.or_else(|| {
            live.dropped
                .is_none()
                .then(|| "drop counters unreadable".into())
        }),
        point: point.describe.clone(),
        filter: a.filter.clone(),
    };
    let verdict = match if canary_seen.is_some() {
        verdict_with_staging(&flows, &health, false)
    } else {
        verdict_for_capture(&flows, &health, &counts)
    } {
        crate::verdict::Verdict::Pass
            if !decoding_problems(&counts).is_empty() || live.save_error.is_some() =>
        {
            crate::verdict::Verdict::Inconclusive
        }
        v => v,
    };
    let analysis = Analysis {
        mode: "watch",
        input: format!("container {name} ({short})"),
        allowlist: allowlist.source.clone(),
        local,
        flows,
        counts,
        capture: health,
        verdict,
        notes,
        phases: Vec::new(),
        stage: None,
        dns_queries: dns_queries(&dns_seen, &[]),
    };
    log.done();
    // A capture file that could not be written whole is not kept (dropping it removes it).
    let keep = a
        .pcap
        .as_deref()
        .zip(pcap_tmp.filter(|_| live.save_error.is_none()));
    report::deliver(
        &analysis,
        &allowlist,
        a.json.as_deref(),
        a.junit.as_deref(),
        a.suggest_allowlist.as_deref(),
        keep,
    )
}
