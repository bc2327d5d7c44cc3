//! `airgap-check watch CONTAINER`: capture a running container's traffic from outside it (or from
//! inside its namespace when its peer is not on this host), until Ctrl-C, `--duration` or its exit,
//! then judge and report as usual.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::analysis::{
    decoding_problems, dns_queries, judge_named, local_notes, names_of, naming_notes,
    verdict_for_capture, verdict_with_staging, Analysis, CaptureHealth,
};
use crate::capture::LiveCapture;
use crate::cli::{parse_duration_for, WatchArgs};
use crate::error::{Error, Result};
use crate::policy::Allowlist;
use crate::stage::{canary_for, preflight_privileges, run_id, send_canary, Progress};
use crate::{docker, observe, report, sandbox};

/// How a watch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ended {
    Duration,
    Signal(&'static str),
    Exited(Option<i64>),
}

impl Ended {
    fn describe(&self, d: Option<Duration>) -> String {
        match self {
            Ended::Duration => format!(
                "--duration {}",
                humantime::format_duration(d.unwrap_or_default())
            ),
            Ended::Signal(s) => format!("{s} (stopped by the user)"),
            Ended::Exited(Some(c)) => format!("the container exited (code {c})"),
            Ended::Exited(None) => "the container stopped".into(),
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

    // Wait for the end: Ctrl-C, SIGTERM, --duration, or the container's exit.
    let ended = if canary_seen == Some(false) {
        Ended::Signal("the missing canary")
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
                    let st = d
                        .inspect_container(&id, None::<bollard::query_parameters::InspectContainerOptions>)
                        .await
                        .ok()
                        .and_then(|i| i.state);
                    match st {
                        Some(s) if s.running == Some(true) => {}
                        Some(s) => break Ended::Exited(s.exit_code),
                        None => break Ended::Exited(None),
                    }
                }
            }
        }
    };
    let exited = matches!(ended, Ended::Exited(_));
    let watched = started.elapsed().as_secs_f64();
    log.line(&format!(
        "stopped after {watched:.1}s: {}",
        ended.describe(duration)
    ));
    if !exited {
        // Let the last packets land.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let live = tokio::task::spawn_blocking(move || capture.finish())
        .await
        .map_err(|e| Error::Capture {
            iface: point.iface.clone(),
            reason: e.to_string(),
        })??;

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
    // everything that crossed it.
    let mut error = live.error.clone();
    if exited
        && error
            .as_deref()
            .is_some_and(|e| e.contains("interface") || e.contains("device"))
    {
        notes.push(format!(
            "the capture ended when the container's interface went away ({})",
            error.take().unwrap_or_default()
        ));
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
