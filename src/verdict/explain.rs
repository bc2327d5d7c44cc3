//! Each flow explained, after it was judged (nothing here changes a verdict): the process that
//! made it, as the sinkhole attributed it, and the manifest dependency it was after.
//!
//! A flow's dependency is found by the exact URL when the flow's HTTP request line was seen (its
//! Host and path), else when the process's argv names an entry's uri, else by the flow's names
//! (TLS SNI, HTTP Host, DNS answers) against each uri's host. Among several entries, the one
//! chosen is not cached rather than cached (a cached one needs no download), then the default
//! version, then one of the buildpack whose phase made the flow, then the first in manifest order;
//! `candidates` says how many matched.

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
    let index = Index::new(found);
    for f in flows {
        f.process = index.process_for(&f.flow.key, f.flow.stats.first_seen);
    }
}

/// One dependency a flow may be after, with its uri read once.
struct Candidate<'a> {
    buildpack: usize,
    order: usize,
    dep: &'a Dependency,
    uri: Option<Url>,
}

/// Give each flow the dependency it was after, and how many entries matched.
pub fn explain_dependencies(flows: &mut [Judged], manifests: &[StackDeps]) {
    let all: Vec<Candidate> = manifests
        .iter()
        .flat_map(|m| m.dependencies.iter().map(move |d| (m.buildpack, d)))
        .enumerate()
        .map(|(order, (buildpack, dep))| Candidate {
            buildpack,
            order,
            dep,
            uri: Url::parse(dep.uri.trim()).ok(),
        })
        .collect();
    if all.is_empty() {
        return;
    }
    for f in flows {
        (f.dependency, f.candidates) = explain(f, &all);
    }
}

fn explain(f: &Judged, all: &[Candidate]) -> (Option<DependencyRef>, usize) {
    if let Some(url) = request_url(f) {
        return pick(
            f,
            all.iter().filter(|c| same_resource(c, &url)),
            MatchedBy::Url,
        );
    }
    if let Some(p) = &f.process {
        let named: Vec<Url> = p
            .command
            .iter()
            .filter_map(|w| Url::parse(w).ok())
            .collect();
        let by_argv = all
            .iter()
            .filter(|c| named.iter().any(|u| same_resource(c, u)));
        if let (Some(d), n @ 1..) = pick(f, by_argv, MatchedBy::Command) {
            return (Some(d), n);
        }
    }
    let by_host = all.iter().filter(|c| {
        c.uri
            .as_ref()
            .and_then(Url::host_str)
            .is_some_and(|h| f.names.iter().any(|n| n.eq_ignore_ascii_case(h)))
    });
    pick(f, by_host, MatchedBy::Host)
}

/// The preferred of `matched`, and how many there were.
fn pick<'a>(
    f: &Judged,
    matched: impl Iterator<Item = &'a Candidate<'a>>,
    how: MatchedBy,
) -> (Option<DependencyRef>, usize) {
    let matched: Vec<&Candidate> = matched.collect();
    let best = matched.iter().min_by_key(|c| {
        (
            c.dep.cached.is_some(),
            !c.dep.default,
            Some(c.buildpack) != f.phase_buildpack,
            c.order,
        )
    });
    let dependency = best.map(|c| DependencyRef {
        buildpack: c.buildpack,
        name: c.dep.name.clone(),
        version: c.dep.version.clone(),
        uri: c.dep.uri.clone(),
        cached: c.dep.cached.is_some(),
        matched_by: how,
    });
    (dependency, matched.len())
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

/// The same resource: host, path and query equal (the scheme and port may differ: a buildpack
/// may fetch an https uri over http, or through a mirror's port).
fn same_resource(c: &Candidate, u: &Url) -> bool {
    c.uri.as_ref().is_some_and(|d| {
        d.host_str() == u.host_str() && d.path() == u.path() && d.query() == u.query()
    })
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
