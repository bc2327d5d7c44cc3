//! Each flow explained, after it was judged (nothing here changes a verdict): the process that
//! made it, as the sinkhole attributed it, and the manifest dependency it was after.
//!
//! A disallowed flow's dependency is found by the exact URL when the flow's HTTP request line was
//! seen (its Host and path), else when the process's argv names an entry's uri, else by the
//! flow's names (TLS SNI, HTTP Host, DNS answers) against each uri's host. Among several entries,
//! the one chosen is not cached rather than cached (a cached one needs no download), then the
//! default version, then one of the buildpack whose phase made the flow, then the first in
//! manifest order; `candidates` says how many matched. An allowed flow is not explained.
//!
//! The entries are indexed once (by host, and by host, path and query), each key's choice made in
//! advance, so a flow costs the same however many entries the manifests list.

use std::collections::HashMap;

use url::Url;

use crate::capture::attribution::{Attributed, Index};
use crate::manifest::{Dependency, StackDeps};
use crate::verdict::analysis::Judged;

/// How a flow was matched to its dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchedBy {
    /// The HTTP request's URL is the entry's uri.
    Url,
    /// The command's argv names the entry's uri.
    Command,
    /// A name of the flow is the host of the entry's uri.
    Host,
}

/// The manifest entry behind a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyRef {
    /// The buildpack (0-based) whose manifest lists it.
    pub buildpack: usize,
    pub name: String,
    pub version: String,
    pub uri: String,
    /// The buildpack holds it (so this flow was not needed to get it).
    pub cached: bool,
    pub matched_by: MatchedBy,
}

/// Give each flow the process the sinkhole attributed it to, if any.
pub fn attribute_processes(flows: &mut [Judged], found: &[Attributed]) {
    if found.is_empty() {
        return;
    }
    off_worker(|| {
        let index = Index::new(found);
        for f in flows {
            f.process = index.process_for(&f.flow.key, f.flow.stats.first_seen);
        }
    });
}

/// Give each disallowed flow the dependency it was after, and how many entries matched.
pub fn explain_dependencies(flows: &mut [Judged], manifests: &[StackDeps]) {
    off_worker(|| {
        let entries = Entries::new(manifests);
        if entries.all.is_empty() {
            return;
        }
        let mut argvs = HashMap::new();
        for f in flows.iter_mut().filter(|f| !f.allowed()) {
            (f.dependency, f.candidates) = entries.explain(f, &mut argvs);
        }
    });
}

/// Run `work` without holding up the async runtime: on a worker of a multi-threaded runtime, the
/// worker first hands its other tasks over (block_in_place); anywhere else, as it is.
fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// One dependency a flow may be after (its place in [`Entries::all`] is its manifest order).
struct Candidate<'a> {
    buildpack: usize,
    dep: &'a Dependency,
}

/// A uri as it is compared: its host (lowercase), path and query (the scheme and port may differ:
/// a buildpack may fetch an https uri over http, or through a mirror's port).
type Resource = (Option<String>, String, Option<String>);

fn resource(u: &Url) -> Resource {
    (
        u.host_str().map(str::to_ascii_lowercase),
        u.path().to_string(),
        u.query().map(str::to_string),
    )
}

/// The entries that share a key, as [`Entries::pick`] needs them: how many, and for each rank
/// (cached or not, then default or not) the first overall and the first of each buildpack.
#[derive(Default)]
struct Group {
    len: usize,
    first: [Option<usize>; 4],
    by_buildpack: Vec<(usize, [Option<usize>; 4])>,
}

impl Group {
    /// Add the entry `order` (entries are added in order: the first kept is the first listed).
    fn add(&mut self, order: usize, c: &Candidate) {
        self.len += 1;
        let rank = usize::from(c.dep.cached.is_some()) * 2 + usize::from(!c.dep.default);
        self.first[rank].get_or_insert(order);
        let at = match self
            .by_buildpack
            .iter()
            .position(|(b, _)| *b == c.buildpack)
        {
            Some(at) => at,
            None => {
                self.by_buildpack.push((c.buildpack, [None; 4]));
                self.by_buildpack.len() - 1
            }
        };
        self.by_buildpack[at].1[rank].get_or_insert(order);
    }

    fn first_of(&self, buildpack: usize, rank: usize) -> Option<usize> {
        let (_, first) = self.by_buildpack.iter().find(|(b, _)| *b == buildpack)?;
        first[rank]
    }
}

/// Every manifest entry, indexed.
struct Entries<'a> {
    all: Vec<Candidate<'a>>,
    by_host: HashMap<String, Group>,
    by_resource: HashMap<Resource, Group>,
}

/// The groups an argv names, by the [`Arc`](std::sync::Arc) of its process (read once however
/// many flows it made).
type Argvs<'e> = HashMap<*const crate::capture::attribution::Process, Vec<&'e Group>>;

impl<'a> Entries<'a> {
    fn new(manifests: &'a [StackDeps]) -> Entries<'a> {
        let all: Vec<Candidate> = manifests
            .iter()
            .flat_map(|m| m.dependencies.iter().map(move |d| (m.buildpack, d)))
            .map(|(buildpack, dep)| Candidate { buildpack, dep })
            .collect();
        let mut by_host: HashMap<String, Group> = HashMap::new();
        let mut by_resource: HashMap<Resource, Group> = HashMap::new();
        for (order, c) in all.iter().enumerate() {
            counted(1);
            let Ok(uri) = Url::parse(c.dep.uri.trim()) else {
                continue;
            };
            if let Some(host) = uri.host_str() {
                let host = host.to_ascii_lowercase();
                by_host.entry(host).or_default().add(order, c);
            }
            by_resource.entry(resource(&uri)).or_default().add(order, c);
        }
        Entries {
            all,
            by_host,
            by_resource,
        }
    }

    fn explain<'e>(&'e self, f: &Judged, argvs: &mut Argvs<'e>) -> (Option<DependencyRef>, usize) {
        if let Some(url) = request_url(f) {
            let groups: Vec<&Group> = self.by_resource.get(&resource(&url)).into_iter().collect();
            return self.pick(f, &groups, MatchedBy::Url);
        }
        if let Some(p) = &f.process {
            let groups = argvs
                .entry(std::sync::Arc::as_ptr(p))
                .or_insert_with(|| self.named_by(&p.command));
            if let (Some(d), n @ 1..) = self.pick(f, groups, MatchedBy::Command) {
                return (Some(d), n);
            }
        }
        let mut hosts: Vec<String> = f.names.iter().map(|n| n.to_ascii_lowercase()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let groups: Vec<&Group> = hosts.iter().filter_map(|h| self.by_host.get(h)).collect();
        self.pick(f, &groups, MatchedBy::Host)
    }

    /// The groups of the uris an argv names, each once.
    fn named_by(&self, argv: &[String]) -> Vec<&Group> {
        let mut named: Vec<Resource> = argv
            .iter()
            .filter_map(|w| Url::parse(w).ok())
            .map(|u| resource(&u))
            .collect();
        named.sort_unstable();
        named.dedup();
        named
            .iter()
            .filter_map(|r| self.by_resource.get(r))
            .collect()
    }

    /// The preferred entry of `groups` (which share no entry), and how many entries they hold.
    fn pick(
        &self,
        f: &Judged,
        groups: &[&Group],
        how: MatchedBy,
    ) -> (Option<DependencyRef>, usize) {
        counted(groups.len());
        let best = (0..4).find_map(|rank| {
            let of_phase = f
                .phase_buildpack
                .and_then(|b| groups.iter().filter_map(|g| g.first_of(b, rank)).min());
            of_phase.or_else(|| groups.iter().filter_map(|g| g.first[rank]).min())
        });
        let dependency = best.map(|order| {
            let c = &self.all[order];
            DependencyRef {
                buildpack: c.buildpack,
                name: c.dep.name.clone(),
                version: c.dep.version.clone(),
                uri: c.dep.uri.clone(),
                cached: c.dep.cached.is_some(),
                matched_by: how,
            }
        });
        (dependency, groups.iter().map(|g| g.len).sum())
    }
}

#[cfg(test)]
thread_local! {
    /// Entries indexed and groups looked at, on this thread.
    static WORK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Count `n` steps of work (tests only: the matching must stay linear).
fn counted(_n: usize) {
    #[cfg(test)]
    WORK.with(|w| w.set(w.get() + _n));
}

/// The URL of the flow's HTTP request, when its request line was seen: an absolute target as it
/// is, else `http://` + Host + the target.
fn request_url(f: &Judged) -> Option<Url> {
    let app = f.flow.app.as_deref()?;
    let target = app.request_line.as_deref()?.split_whitespace().nth(1)?;
    if target.starts_with("http://") || target.starts_with("https://") {
        return Url::parse(target).ok();
    }
    let host = app.http_host.as_deref()?;
    target
        .starts_with('/')
        .then(|| Url::parse(&format!("http://{host}{target}")).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::attribution::Process;
    use crate::flows::{AppInfo, Flow, FlowKey};
    use std::sync::Arc;

    fn dep(name: &str, version: &str, uri: &str, cached: bool, default: bool) -> Dependency {
        Dependency {
            name: name.into(),
            version: version.into(),
            uri: uri.into(),
            sha256: None,
            cached: cached.then(|| "dependencies/x".into()),
            default,
        }
    }

    fn manifest(deps: Vec<Dependency>) -> StackDeps {
        StackDeps {
            buildpack: 0,
            source: "bp".into(),
            stack: "cflinuxfs4".into(),
            dependencies: deps,
            stacks: vec!["cflinuxfs4".into()],
        }
    }

    fn flow(names: &[&str], request: Option<(&str, &str)>) -> Judged {
        let a = "10.99.0.2".parse().unwrap();
        Judged {
            flow: Flow {
                key: FlowKey {
                    proto: 6,
                    src: a,
                    src_port: Some(40000),
                    dst: "198.18.0.1".parse().unwrap(),
                    dst_port: Some(80),
                },
                stats: Default::default(),
                app: request.map(|(host, line)| {
                    Box::new(AppInfo {
                        http_host: Some(host.into()),
                        request_line: Some(line.into()),
                        ..AppInfo::default()
                    })
                }),
            },
            remote_addr: "198.18.0.1".parse().unwrap(),
            remote_port: Some(80),
            names: names.iter().map(|n| n.to_string()).collect(),
            rule: None,
            denied: None,
            phase: Some("supply".into()),
            phase_buildpack: Some(0),
            process: None,
            dependency: None,
            candidates: 0,
        }
    }

    fn deps() -> Vec<StackDeps> {
        vec![manifest(vec![
            dep(
                "tool",
                "1.2.3",
                "http://deps.example.org/tool/tool-1.2.3.tgz",
                true,
                false,
            ),
            dep(
                "node",
                "18.19.0",
                "https://deps.example.org/node/node-18.19.0.tgz",
                false,
                false,
            ),
            dep(
                "node",
                "20.11.1",
                "https://deps.example.org/node/node-20.11.1.tgz",
                false,
                true,
            ),
        ])]
    }

    fn explained(mut f: Judged) -> (Option<(String, bool, MatchedBy)>, usize) {
        explain_dependencies(std::slice::from_mut(&mut f), &deps());
        (
            f.dependency
                .map(|d| (format!("{} {}", d.name, d.version), d.cached, d.matched_by)),
            f.candidates,
        )
    }

    #[test]
    fn an_http_request_is_matched_by_its_exact_url() {
        let f = flow(
            &["deps.example.org"],
            Some(("deps.example.org", "GET /tool/tool-1.2.3.tgz HTTP/1.1")),
        );
        assert_eq!(
            explained(f),
            (Some(("tool 1.2.3".into(), true, MatchedBy::Url)), 1)
        );
        // A URL the manifest does not list is no dependency, whatever its host.
        let f = flow(
            &["deps.example.org"],
            Some(("deps.example.org", "GET /other.tgz HTTP/1.1")),
        );
        assert_eq!(explained(f), (None, 0));
        // Through a proxy: the absolute form.
        let f = flow(
            &["proxy"],
            Some((
                "proxy",
                "GET https://deps.example.org/node/node-18.19.0.tgz HTTP/1.1",
            )),
        );
        assert_eq!(explained(f).0.unwrap().0, "node 18.19.0");
    }

    #[test]
    fn by_host_the_uncached_default_wins() {
        let f = flow(&["deps.example.org"], None);
        assert_eq!(
            explained(f),
            (Some(("node 20.11.1".into(), false, MatchedBy::Host)), 3)
        );
        assert_eq!(explained(flow(&["elsewhere.example.org"], None)), (None, 0));
        assert_eq!(explained(flow(&[], None)), (None, 0));
    }

    #[test]
    fn an_allowed_flow_is_not_explained() {
        let mut f = flow(&["deps.example.org"], None);
        f.rule = Some("dns".into());
        assert_eq!(explained(f), (None, 0));
    }

    #[test]
    fn it_runs_inside_either_kind_of_runtime() {
        for mut rt in [
            tokio::runtime::Builder::new_multi_thread(),
            tokio::runtime::Builder::new_current_thread(),
        ] {
            let rt = rt.build().unwrap();
            let got = rt.block_on(async {
                tokio::spawn(async { explained(flow(&["deps.example.org"], None)) })
                    .await
                    .unwrap()
            });
            assert_eq!(got.1, 3);
        }
    }

    #[test]
    fn matching_costs_the_same_per_flow_however_many_entries() {
        // A port scan's worth of flows against a 16 MiB manifest's worth of entries, every one on
        // the same host (the worst case: each flow matches them all).
        let n = if cfg!(debug_assertions) {
            20_000
        } else {
            100_000
        };
        let entries: Vec<Dependency> = (0..n)
            .map(|i| {
                let uri = format!("https://deps.example.org/d/{i}.tgz");
                dep("d", &i.to_string(), &uri, i % 2 == 0, i == n - 1)
            })
            .collect();
        let manifests = [manifest(entries)];
        let curl = Arc::new(Process {
            pid: 9,
            command: vec!["curl".into(), "https://deps.example.org/d/7.tgz".into()],
            parent: None,
        });
        let mut flows: Vec<Judged> = (0..n)
            .map(|i| match i % 3 {
                0 => flow(&["deps.example.org"], None),
                1 => {
                    let line = format!("GET /d/{i}.tgz HTTP/1.1");
                    flow(&["deps.example.org"], Some(("deps.example.org", &line)))
                }
                _ => Judged {
                    process: Some(curl.clone()),
                    ..flow(&["deps.example.org"], None)
                },
            })
            .collect();
        WORK.with(|w| w.set(0));
        let started = std::time::Instant::now();
        explain_dependencies(&mut flows, &manifests);
        let took = started.elapsed();
        let work = WORK.with(|w| w.get());
        assert!(
            work <= 4 * (n + n),
            "{work} steps for {n} flows and {n} entries"
        );
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
        let version = |f: &Judged| (f.dependency.as_ref().unwrap().version.clone(), f.candidates);
        // By host: the default (the last entry, not cached) among all of them.
        assert_eq!(version(&flows[0]), ((n - 1).to_string(), n));
        assert_eq!(version(&flows[1]), ("1".into(), 1), "by its URL");
        assert_eq!(version(&flows[2]), ("7".into(), 1), "by the command's argv");
    }

    #[test]
    fn the_commands_argv_names_the_exact_uri() {
        let mut f = flow(&["deps.example.org"], None);
        f.process = Some(Arc::new(Process {
            pid: 9,
            command: vec![
                "curl".into(),
                "-fsSL".into(),
                "https://deps.example.org/node/node-18.19.0.tgz".into(),
            ],
            parent: None,
        }));
        assert_eq!(
            explained(f),
            (Some(("node 18.19.0".into(), false, MatchedBy::Command)), 1)
        );
    }
}
