//! A container's processes as the host's /proc shows them: those in the container's cgroup (as
//! the idle first process's `/proc/PID/cgroup` names it, listed by that cgroup's `cgroup.procs`),
//! the sockets they hold (`socket:[INODE]` among their open files), their argv, and their parent.
//! A process is known by its host pid *and* its start time, so a pid the kernel gave again to
//! another process is never taken for the first.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// At most this much of a command line is read.
const MAX_CMDLINE: u64 = 4096;
/// At most this many processes (and as many argvs) are remembered across asks.
const MAX_KNOWN: usize = 100_000;

/// A process that made a connection attempt, as the container saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Process {
    /// Its pid inside the container (the last of /proc/PID/status's NSpid).
    pub pid: u32,
    /// Its argv.
    pub command: Vec<String>,
    /// Its parent's argv, when the parent is a process of the container too (one copy, shared by
    /// its children).
    #[serde(serialize_with = "shared_argv")]
    pub parent: Option<Arc<[String]>>,
}

fn shared_argv<S: serde::Serializer>(
    argv: &Option<Arc<[String]>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&argv.as_deref(), s)
}

/// A host process, told apart from any later one with the same pid: (pid, start time in clock
/// ticks since boot).
type Key = (u32, u64);

/// The processes already read, kept from one ask to the next: one [`Process`] per process
/// however many connections it made, one argv per parent however many children it started.
#[derive(Default)]
pub struct Known {
    processes: HashMap<Key, Arc<Process>>,
    parents: HashMap<Key, Arc<[String]>>,
}

/// The processes of one container.
pub struct Procs {
    /// Its first process's /proc/PID/cgroup, whole: a process of the container has the same.
    cgroup: String,
    /// The cgroup.procs file that lists its processes; `None`: every host process is looked at.
    listing: Option<PathBuf>,
    /// `listing` lists exactly the container's processes (a cgroup v2 host: the cgroup is the one
    /// line of `cgroup`); otherwise each pid listed is checked against `cgroup`.
    exact: bool,
}

impl Procs {
    /// The container whose idle first process has the host pid `init`; `None` when it is gone.
    pub fn of(init: u32) -> Option<Procs> {
        let cgroup = std::fs::read_to_string(format!("/proc/{init}/cgroup")).ok()?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Some(Procs {
            listing: cgroup_procs(&cgroup, &mountinfo),
            exact: cgroup.lines().count() == 1 && cgroup.starts_with("0::"),
            cgroup,
        })
    }

    /// Whether the host pid `pid` is a process of the container.
    fn contains(&self, pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c == self.cgroup)
    }

    /// Every process of the container (host pids).
    pub fn pids(&self) -> Vec<u32> {
        if let Some(listed) = self.listing.as_deref().and_then(read_pids) {
            if self.exact {
                return listed;
            }
            return listed.into_iter().filter(|&p| self.contains(p)).collect();
        }
        // No cgroup.procs to read (no cgroup file system mounted here, or a layout not understood):
        // the same answer, slower, from every host process's /proc/PID/cgroup.
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&p| self.contains(p))
            .collect()
    }

    /// For each of `inodes`, the container's processes (host pids) that hold that socket.
    pub fn holders(&self, inodes: &HashSet<u32>) -> HashMap<u32, Vec<u32>> {
        let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
        for pid in self.pids() {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                if let Some(inode) = socket_inode(&target.to_string_lossy()) {
                    if inodes.contains(&inode) && !out.get(&inode).is_some_and(|v| v.contains(&pid))
                    {
                        out.entry(inode).or_default().push(pid);
                    }
                }
            }
        }
        out
    }

    /// The one of `holders` (processes sharing a socket) that made the attempt: one that is no
    /// other holder's parent (a shell that forked keeps a copy of the socket; the child it started
    /// is the one using it), the last started of those (by start time: pids wrap).
    pub fn maker(&self, holders: &[u32]) -> Option<u32> {
        let stats: Vec<(u32, Stat)> = holders
            .iter()
            .filter_map(|&p| Some((p, stat(p)?)))
            .collect();
        let parents: HashSet<u32> = stats.iter().map(|(_, s)| s.ppid).collect();
        let newest = |of: &mut dyn Iterator<Item = &(u32, Stat)>| {
            of.max_by_key(|(p, s)| (s.starttime, *p)).map(|(p, _)| *p)
        };
        newest(&mut stats.iter().filter(|(p, _)| !parents.contains(p)))
            .or_else(|| newest(&mut stats.iter()))
    }

    /// The process with host pid `pid`, as the container saw it (the one read before, when it is
    /// the same process); `None` when it is gone, or is no longer the container's.
    pub fn process(&self, pid: u32, known: &mut Known) -> Option<Arc<Process>> {
        let before = stat(pid)?;
        let key = (pid, before.starttime);
        if let Some(p) = known.processes.get(&key) {
            return Some(p.clone());
        }
        let command = argv(pid)?;
        let parent = (before.ppid != 0)
            .then(|| self.parent(before.ppid, known))
            .flatten();
        let ns = ns_pid(pid);
        // Read while the pid was still that process of the container (a pid the kernel gave again,
        // perhaps to a host process, would put its argv in the report).
        if !self.still(key) {
            return None;
        }
        let p = Arc::new(Process {
            pid: ns.unwrap_or(pid),
            command,
            parent,
        });
        if known.processes.len() < MAX_KNOWN {
            known.processes.insert(key, p.clone());
        }
        Some(p)
    }

    /// The argv of the parent `pid` when it is a process of the container (the one read before,
    /// when it is the same process), checked as [`Procs::process`] does.
    fn parent(&self, pid: u32, known: &mut Known) -> Option<Arc<[String]>> {
        let key = (pid, stat(pid)?.starttime);
        if let Some(argv) = known.parents.get(&key) {
            return Some(argv.clone());
        }
        let argv: Arc<[String]> = argv(pid)?.into();
        if !self.still(key) {
            return None;
        }
        if known.parents.len() < MAX_KNOWN {
            known.parents.insert(key, argv.clone());
        }
        Some(argv)
    }

    /// Whether the process `key` still runs, in the container.
    fn still(&self, (pid, started): Key) -> bool {
        stat(pid).is_some_and(|s| s.starttime == started) && self.contains(pid)
    }
}

/// The pids a cgroup.procs file lists; `None` when it cannot be read.
fn read_pids(path: &Path) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The cgroup.procs file of the most specific cgroup that `cgroup` (a /proc/PID/cgroup) names
/// and that is mounted here (`mountinfo`, /proc/self/mountinfo's): the unified (v2) hierarchy's,
/// or a v1 controller's (a Docker on cgroup v1 puts the container in `/docker/ID` of each).
fn cgroup_procs(cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
    // The first listed of the deepest (max_by_key keeps the last of equals).
    let lines: Vec<&str> = cgroup.lines().collect();
    lines
        .into_iter()
        .rev()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let m = mounts.iter().find(|m| m.serves(id, controllers))?;
            let rel = if m.root == "/" {
                path
            } else {
                path.strip_prefix(m.root)
                    .filter(|r| r.is_empty() || r.starts_with('/'))?
            };
            let depth = rel.split('/').filter(|s| !s.is_empty()).count();
            let file = Path::new(m.point)
                .join(rel.trim_start_matches('/'))
                .join("cgroup.procs");
            Some(((depth, id == "0"), file))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, file)| file)
}

/// A cgroup file system mounted here, from a line of /proc/self/mountinfo.
struct Mount<'a> {
    /// The cgroup at the root of the mount.
    root: &'a str,
    point: &'a str,
    /// `None`: the unified (v2) hierarchy; else the v1 mount's options (its controllers).
    v1: Option<Vec<&'a str>>,
}

impl<'a> Mount<'a> {
    /// "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER_OPTIONS".
    fn parse(line: &'a str) -> Option<Mount<'a>> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let v1 = match *fields.get(sep + 1)? {
            "cgroup2" => None,
            "cgroup" => Some(fields.get(sep + 3)?.split(',').collect()),
            _ => return None,
        };
        Some(Mount {
            root: fields.get(3)?,
            point: fields.get(4)?,
            v1,
        })
    }

    /// Whether it mounts the hierarchy of a /proc/PID/cgroup line "ID:CONTROLLERS:PATH".
    fn serves(&self, id: &str, controllers: &str) -> bool {
        match &self.v1 {
            None => id == "0",
            Some(opts) => {
                id != "0"
                    && !controllers.is_empty()
                    && controllers.split(',').all(|c| opts.contains(&c))
            }
        }
    }
}

/// "socket:[12345]" → 12345.
fn socket_inode(link: &str) -> Option<u32> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A process's argv (at most [`MAX_CMDLINE`] bytes of it); `None` for a process that is gone or
/// has none (a zombie).
pub fn argv(pid: u32) -> Option<Vec<String>> {
    let mut bytes = Vec::new();
    std::fs::File::open(format!("/proc/{pid}/cmdline"))
        .and_then(|f| f.take(MAX_CMDLINE).read_to_end(&mut bytes))
        .ok()?;
    split_cmdline(&bytes)
}

/// NUL-separated arguments (the last NUL optional); `None` when there are none.
fn split_cmdline(bytes: &[u8]) -> Option<Vec<String>> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return None;
    }
    Some(
        bytes
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// What /proc/PID/stat says of a process that matters here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    /// Its parent (host pid).
    ppid: u32,
    /// When it started (clock ticks since boot): with the pid, it names one process.
    starttime: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The 4th and 22nd fields of /proc/PID/stat, after the command in parentheses (which may hold
/// spaces and parentheses itself: the last ')' ends it).
fn parse_stat(stat: &str) -> Option<Stat> {
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let ppid = rest.nth(1)?.parse().ok()?;
    let starttime = rest.nth(17)?.parse().ok()?;
    Some(Stat { ppid, starttime })
}

/// A process's pid in the innermost pid namespace it is in (the container's).
fn ns_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_the_kernel_writes_them() {
        assert_eq!(socket_inode("socket:[4026]"), Some(4026));
        assert_eq!(socket_inode("pipe:[4026]"), None);
        assert_eq!(
            split_cmdline(b"nc\0deps.example.org\080\0"),
            Some(vec!["nc".into(), "deps.example.org".into(), "80".into()])
        );
        assert_eq!(split_cmdline(b""), None);
        assert_eq!(
            parse_stat("42 (a) b) c) S 7 42 42 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 12345 99"),
            Some(Stat {
                ppid: 7,
                starttime: 12345
            })
        );
        assert_eq!(parse_stat("42 (a) S 7"), None);
        let me = stat(std::process::id()).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.starttime > 0);
    }

    const MOUNTS: &str = "\
25 1 0:23 / /sys rw - sysfs sysfs rw
31 25 0:27 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755
35 31 0:30 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw
40 31 0:35 / /sys/fs/cgroup/pids rw shared:19 - cgroup cgroup rw,pids
41 31 0:36 / /sys/fs/cgroup/cpu,cpuacct rw shared:20 - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn the_cgroup_procs_file_is_the_most_specific_mounted_one() {
        let v2 = "35 31 0:30 / /sys/fs/cgroup rw shared:10 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_procs("0::/system.slice/docker-abc.scope\n", v2),
            Some("/sys/fs/cgroup/system.slice/docker-abc.scope/cgroup.procs".into())
        );
        // cgroup v1 (with the unified hierarchy beside it, where Docker leaves it at the root).
        let v1 =
            "0::/\n8:pids:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n";
        assert_eq!(
            cgroup_procs(v1, MOUNTS),
            Some("/sys/fs/cgroup/pids/docker/abc/cgroup.procs".into())
        );
        // A mount of a cgroup below the root (inside a container): paths are under it.
        let inner = "35 31 0:30 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_procs("0::/docker/abc/sub\n", inner),
            Some("/sys/fs/cgroup/sub/cgroup.procs".into())
        );
        assert_eq!(cgroup_procs("0::/elsewhere\n", inner), None);
        assert_eq!(cgroup_procs("0::/x\n", ""), None, "nothing mounted");
    }

    #[test]
    fn the_pids_are_those_cgroup_procs_lists() {
        let me = std::process::id();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), format!("1\n{me}\n")).unwrap();
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let exact = Procs {
            cgroup: cgroup.clone(),
            listing: Some(file.path().into()),
            exact: true,
        };
        // Taken as listed: nothing else of /proc is looked at.
        assert_eq!(exact.pids(), [1, me]);
        // Listed pids are checked against the cgroup when the file is not the only hierarchy.
        let checked = Procs {
            exact: false,
            ..exact
        };
        let pids = checked.pids();
        assert!(pids.contains(&me), "{pids:?}");
        assert_eq!(
            pids.contains(&1),
            std::fs::read_to_string("/proc/1/cgroup").unwrap() == cgroup
        );
        // Unreadable: every host process is looked at.
        let scan = Procs {
            listing: Some("/nonexistent/cgroup.procs".into()),
            ..checked
        };
        assert!(scan.pids().contains(&me));
    }

    #[test]
    fn this_process_holds_its_own_socket() {
        let me = std::process::id();
        let procs = Procs::of(me).unwrap();
        assert!(procs.pids().contains(&me));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut d = crate::capture::sock_diag::Diag::open().unwrap();
        let inode = d
            .dump(6)
            .unwrap()
            .into_iter()
            .find(|s| s.local == listener.local_addr().unwrap())
            .unwrap()
            .inode;
        let held = procs.holders(&HashSet::from([inode]));
        assert_eq!(held[&inode], [me]);
        assert_eq!(procs.maker(&held[&inode]), Some(me));
        let p = procs.process(me, &mut Known::default()).unwrap();
        assert_eq!(p.command[0], std::env::args().next().unwrap());
    }

    /// Two children of this process, in its cgroup, their argv in place (spawn can return before
    /// the kernel has finished the exec).
    fn children() -> [std::process::Child; 2] {
        let sleep = || {
            let c = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while argv(c.id()).is_none_or(|a| a[0] != "sleep") {
                assert!(std::time::Instant::now() < deadline, "sleep never ran");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            c
        };
        [sleep(), sleep()]
    }

    #[test]
    fn a_process_is_read_once_and_its_parent_is_shared() {
        let me = std::process::id();
        let procs = Procs::of(me).unwrap();
        let mut kids = children();
        let (a, b) = (kids[0].id(), kids[1].id());
        let mut known = Known::default();
        let first = procs.process(a, &mut known).unwrap();
        let again = procs.process(a, &mut known).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one Process per process");
        assert_eq!(first.command, ["sleep", "30"]);
        let other = procs.process(b, &mut known).unwrap();
        let parent = |p: &Process| p.parent.clone().unwrap();
        assert!(
            Arc::ptr_eq(&parent(&first), &parent(&other)),
            "one argv per parent"
        );
        assert_eq!(
            first.parent.as_deref().unwrap()[0],
            std::env::args().next().unwrap()
        );
        // The child that uses a socket its parent holds too made the attempt.
        assert_eq!(procs.maker(&[me, a]), Some(a));
        assert_eq!(procs.maker(&[a, me]), Some(a));
        for k in &mut kids {
            let _ = k.kill();
            let _ = k.wait();
        }
        // Gone: the pid names nothing any more, whatever was read before.
        assert_eq!(procs.process(a, &mut Known::default()), None);
        // A process outside the container's cgroup is never read.
        let elsewhere = Procs {
            cgroup: "0::/elsewhere\n".into(),
            listing: None,
            exact: false,
        };
        assert_eq!(elsewhere.process(me, &mut Known::default()), None);
    }
}
