//! `airgap-check inspect`: the manifest question answered before any staging, on the cached
//! fixture buildpacks as folders and as zips, with neither Docker nor root needed.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::support::{root, Agc};

/// `inspect --buildpack BP ARGS… --json DIR/i.json`, expecting `exit`; the JSON report, if any.
fn inspect(bp: &Path, args: &[&str], exit: i32) -> (crate::support::Outcome, Option<Value>) {
    let agc = Agc::new(&["inspect", "--buildpack"]).arg(bp).args(args);
    let json = agc.dir().join("i.json");
    let o = agc.arg("--json").arg(&json).expect_exit(exit).run();
    let j = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("the JSON report parses"));
    (o, j)
}

/// A copy of the fixture buildpack `name`, to change.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
    let d = tempfile::tempdir().unwrap();
    copy(&root().join("fixtures/buildpacks").join(name), d.path());
    d
}

/// A zip of the folder `dir`, every file under `top/`.
fn zip_of(dir: &Path, top: &str, out: &Path) {
    fn add(w: &mut zip::ZipWriter<std::fs::File>, base: &Path, dir: &Path, top: &str) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                add(w, base, &p, top);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                let o = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated);
                w.start_file(format!("{top}{rel}"), o).unwrap();
                w.write_all(&std::fs::read(&p).unwrap()).unwrap();
            }
        }
    }
    let mut w = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    add(&mut w, dir, dir, top);
    w.finish().unwrap();
}

fn states(j: &Value, stack: usize) -> Vec<(String, String)> {
    j["stacks"][stack]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                format!(
                    "{} {}",
                    e["name"].as_str().unwrap(),
                    e["version"].as_str().unwrap()
                ),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn inspect_answers_the_manifest_question_for_a_folder_and_its_zip() {
    let folder = root().join("fixtures/buildpacks/cached-http");
    let (o, j) = inspect(&folder, &[], 1);
    let j = j.unwrap();
    assert_eq!(j["mode"], "inspect");
    assert_eq!(j["verdict"], "fail");
    assert_eq!(j["language"], "fixture");
    let stacks: Vec<&str> = j["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stack"].as_str().unwrap())
        .collect();
    assert_eq!(stacks, ["cflinuxfs4", "cflinuxfs3"], "every stack it names");
    assert_eq!(
        states(&j, 0),
        [
            ("tool 1.2.3".to_string(), "intact".to_string()),
            ("lib 2.0.0".into(), "intact".into()),
            ("node 20.11.1".into(), "missing".into()),
        ]
    );
    assert_eq!(
        states(&j, 1),
        [("node 18.19.0".to_string(), "missing".to_string())]
    );
    assert_eq!(j["stacks"][0]["entries"][2]["default"], true);
    assert_eq!(
        j["stacks"][0]["entries"][1]["file"],
        "dependencies/18ab07710f60081031c6784ae3982a23/lib-2.0.0-linux-x64.tgz",
        "where its file: says"
    );
    assert_eq!(j["unnamed_files"], json!([]));
    assert_eq!(j["hashed"]["files"], 2);
    assert!(
        o.stdout.contains(
            "  stack cflinuxfs4: 3 dependencies, 2 cached and intact, 1 missing\n    missing       node 20.11.1 (default)  http://deps.example.org/node/node-20.11.1-linux-x64.tgz\n"
        ),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .ends_with("FAIL: cflinuxfs4: 1 missing; cflinuxfs3: 1 missing\n"),
        "{}",
        o.stdout
    );

    // The same buildpack zipped, under one top folder as GitHub archives are: the same answer,
    // read in place.
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("cached-http.zip");
    zip_of(&folder, "cached-http-main/", &z);
    let (_, zj) = inspect(&z, &["--stack", "cflinuxfs4"], 1);
    let zj = zj.unwrap();
    assert_eq!(zj["stacks"][0], j["stacks"][0]);
    assert_eq!(
        zj["stacks"].as_array().unwrap().len(),
        1,
        "--stack: that stack only"
    );
}

#[test]
fn inspect_finds_a_wrong_sha256_and_files_no_entry_names_and_passes_once_complete() {
    let bp = copy_fixture("cached-http");
    let put = |rel: &str, body: &[u8]| {
        let p = bp.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    // node at the packager's path with the bytes the manifest's sha256 is of, named by file:
    // all cached.
    add_node(bp.path());
    let (o, _) = inspect(bp.path(), &["--stack", "cflinuxfs4"], 0);
    assert!(
        o.stdout
            .ends_with("PASS: every dependency for cflinuxfs4 is cached and intact\n"),
        "{}",
        o.stdout
    );
    // Then a cached file corrupted, and a left-over no entry names.
    let tool = "dependencies/55a5943812896ba0c4f943e41dbb09c1/tool-1.2.3-linux-x64.tgz";
    put(tool, b"not what the manifest says\n");
    put("dependencies/0ld/old-tool-0.9.tgz", b"old\n");
    let (o, j) = inspect(bp.path(), &["--stack", "cflinuxfs4"], 1);
    let j = j.unwrap();
    assert_eq!(j["stacks"][0]["entries"][0]["state"], "wrong_sha256");
    assert_eq!(
        j["stacks"][0]["entries"][0]["actual_sha256"],
        digest("sha256sum", b"not what the manifest says\n")
    );
    assert_eq!(
        j["unnamed_files"],
        json!(["dependencies/0ld/old-tool-0.9.tgz"])
    );
    assert!(
        o.stdout.contains(&format!(
            "    wrong sha256  tool 1.2.3  {tool}: manifest.yml says dddbffc1e042…, the file's is "
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("  not named by any entry (1): dependencies/0ld/old-tool-0.9.tgz\n"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .ends_with("FAIL: cflinuxfs4: 1 with the wrong sha256\n"),
        "{}",
        o.stdout
    );
}

/// node 20.11.1 added to a copy of cached-http as the packager adds it: its bytes at the
/// packager's path, and that path as its `file:`. The path.
fn add_node(bp: &Path) -> String {
    let node = format!(
        "dependencies/{}/node-20.11.1-linux-x64.tgz",
        digest(
            "md5sum",
            b"http://deps.example.org/node/node-20.11.1-linux-x64.tgz"
        )
    );
    std::fs::create_dir_all(bp.join(&node).parent().unwrap()).unwrap();
    std::fs::write(bp.join(&node), b"node 20.11.1\n").unwrap();
    let sha = "  sha256: 23bd11fc1e3616c9c39c97716a330b0c9968e6ca6a3df6c715689e7a49525bb8\n";
    edit_manifest(bp, sha, &format!("{sha}  file: {node}\n"));
    node
}

/// Replace `from` (which must be there) with `to` in the buildpack's manifest.yml.
fn edit_manifest(bp: &Path, from: &str, to: &str) {
    let path = bp.join("manifest.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} in {text}");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// libbuildpack copies `file:` and downloads an entry that has none: lib at the packager's path
/// with no `file:` is "unreferenced", not cached (exit 1), though every byte is there.
#[test]
fn inspect_a_dependency_no_file_names_is_unreferenced_not_cached() {
    let bp = copy_fixture("cached-http");
    add_node(bp.path());
    inspect(bp.path(), &["--stack", "cflinuxfs4"], 0);
    let lib = "dependencies/18ab07710f60081031c6784ae3982a23/lib-2.0.0-linux-x64.tgz";
    edit_manifest(bp.path(), &format!("  file: {lib}\n"), "");
    let (o, j) = inspect(bp.path(), &["--stack", "cflinuxfs4"], 1);
    let j = j.unwrap();
    assert_eq!(j["verdict"], "fail");
    let e = &j["stacks"][0]["entries"][1];
    assert_eq!(
        (&e["name"], &e["state"]),
        (&json!("lib"), &json!("unreferenced"))
    );
    assert_eq!(e["file"], Value::Null, "not cached");
    assert_eq!(j["unnamed_files"], json!([]), "said once, as its state");
    assert!(
        o.stdout.contains(&format!(
            "    unreferenced  lib 2.0.0  {lib}: no file: names it"
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .ends_with("FAIL: cflinuxfs4: 1 unreferenced (no file:)\n"),
        "{}",
        o.stdout
    );
}

/// libbuildpack compares the lowercase hex digest with the manifest's text byte for byte: an
/// uppercase or padded sha256 fails staging, so inspect does not call it intact; and a cached
/// file with no sha256 to check is not intact either.
#[test]
fn inspect_compares_sha256_exactly_and_wants_one() {
    let bp = copy_fixture("cached-http");
    add_node(bp.path());
    let tool = "dddbffc1e042d387e677870e6b7294cd4b3b9ec068259c96728f37f79ed63809";
    for (to, state) in [
        (tool.to_uppercase(), "wrong_sha256"),
        (format!("' {tool} '"), "wrong_sha256"),
        ("~".to_string(), "no_sha256"),
    ] {
        let work = copy_dir(bp.path());
        edit_manifest(
            work.path(),
            &format!("sha256: {tool}\n"),
            &format!("sha256: {to}\n"),
        );
        let (o, j) = inspect(work.path(), &["--stack", "cflinuxfs4"], 1);
        let j = j.unwrap();
        assert_eq!(j["stacks"][0]["entries"][0]["state"], state, "{to}");
        assert!(
            o.stdout.contains("FAIL: cflinuxfs4: 1 with"),
            "{}",
            o.stdout
        );
    }
}

/// A copy of the folder `from`.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(d.path())
        .status()
        .unwrap();
    assert!(status.success());
    d
}

/// The same checks on a zip, read in place: a corrupted cached file is wrong_sha256, and one that
/// cannot be read to its end (a CRC that does not match) is unreadable: exit 1 both.
#[test]
fn inspect_on_a_zip_finds_a_bad_sha256_and_an_unreadable_file() {
    let bp = copy_fixture("cached-http");
    add_node(bp.path());
    let tool = "dependencies/55a5943812896ba0c4f943e41dbb09c1/tool-1.2.3-linux-x64.tgz";
    std::fs::write(bp.path().join(tool), b"not what the manifest says\n").unwrap();
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("bp.zip");
    zip_of(bp.path(), "", &z);
    let (o, j) = inspect(&z, &["--stack", "cflinuxfs4"], 1);
    let j = j.unwrap();
    assert_eq!(j["stacks"][0]["entries"][0]["state"], "wrong_sha256");
    assert!(
        o.stdout
            .ends_with("FAIL: cflinuxfs4: 1 with the wrong sha256\n"),
        "{}",
        o.stdout
    );
    // lib's CRC-32 altered: its bytes no longer read to their end.
    let mut bytes = std::fs::read(&z).unwrap();
    for (sig, name_len, name_at, crc_at) in
        [(b"PK\x03\x04", 26, 30, 14), (b"PK\x01\x02", 28, 46, 16)]
    {
        let starts: Vec<usize> = bytes
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w == sig)
            .map(|(i, _)| i)
            .collect();
        for i in starts {
            let n = u16::from_le_bytes([bytes[i + name_len], bytes[i + name_len + 1]]) as usize;
            if bytes[i + name_at..i + name_at + n].ends_with(b"lib-2.0.0-linux-x64.tgz") {
                bytes[i + crc_at] ^= 0xff;
            }
        }
    }
    std::fs::write(&z, bytes).unwrap();
    let (o, j) = inspect(&z, &["--stack", "cflinuxfs4"], 1);
    let j = j.unwrap();
    assert_eq!(j["stacks"][0]["entries"][1]["state"], "unreadable", "{j}");
    assert!(o.stdout.contains("1 unreadable"), "{}", o.stdout);
}

/// A zip whose file declares 2 GiB inflated (its sizes rewritten: the bytes are a few) is refused
/// before any is read, with the zip, the size, the limit and the option; so is one whose entries
/// share compressed data.
#[test]
fn inspect_refuses_a_zip_bomb_and_overlapping_entries() {
    let d = tempfile::tempdir().unwrap();
    let bomb = d.path().join("bomb.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&bomb).unwrap());
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("manifest.yml", o).unwrap();
    w.write_all(b"dependencies: []\n").unwrap();
    w.finish().unwrap();
    let mut bytes = std::fs::read(&bomb).unwrap();
    for (sig, at) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
        let i = bytes.windows(4).position(|w| w == sig).unwrap();
        bytes[i + at..i + at + 4].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    }
    std::fs::write(&bomb, bytes).unwrap();
    let started = std::time::Instant::now();
    let (o, j) = inspect(&bomb, &[], 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(j.is_none());
    for needle in [
        "bomb.zip",
        "declares 2.0 GiB",
        "256 MiB plus 4× the zip's size",
        "--max-unzipped",
    ] {
        assert!(o.stderr.contains(needle), "{needle}: {}", o.stderr);
    }
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{}", o.stderr);
    let (o, _) = inspect(&bomb, &["--max-unzipped", "1k"], 2);
    assert!(o.stderr.contains("1 KiB (--max-unzipped)"), "{}", o.stderr);

    let overlap = d.path().join("overlap.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&overlap).unwrap());
    w.start_file("manifest.yml", o_default()).unwrap();
    w.write_all(b"dependencies: []\n").unwrap();
    w.shallow_copy_file("manifest.yml", "dependencies/a/x.tgz")
        .unwrap();
    w.finish().unwrap();
    let (o, j) = inspect(&overlap, &[], 2);
    assert!(j.is_none());
    assert!(o.stderr.contains("overlap.zip"), "{}", o.stderr);
    assert!(o.stderr.contains("share compressed data"), "{}", o.stderr);
}

fn o_default() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
}

/// A `dependencies` that is a symlink to `/` is one file no entry names, never walked.
#[test]
fn inspect_never_walks_a_dependencies_symlink() {
    let bp = tempfile::tempdir().unwrap();
    std::fs::write(
        bp.path().join("manifest.yml"),
        "dependencies:\n- {name: a, version: '1', uri: 'http://x/a', cf_stacks: [s4]}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/", bp.path().join("dependencies")).unwrap();
    let started = std::time::Instant::now();
    let (_, j) = inspect(bp.path(), &[], 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(j.unwrap()["unnamed_files"], json!(["dependencies"]));
}

/// Entries with no cf_stacks in a manifest with no stack: are for no stack (libbuildpack's rule):
/// nothing to check, said in a note; with `stack:` they are for that stack.
#[test]
fn inspect_entries_for_no_stack_are_noted_not_counted() {
    let bp = tempfile::tempdir().unwrap();
    let m = "dependencies:\n- {name: a, version: '1', uri: 'http://x/a'}\n";
    std::fs::write(bp.path().join("manifest.yml"), m).unwrap();
    let (o, j) = inspect(bp.path(), &[], 1);
    assert_eq!(j.unwrap()["stacks"], json!([]));
    assert!(
        o.stdout.contains(
            "FAIL: nothing could be checked: every entry of manifest.yml (1) is for no stack"
        ),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("PASS"), "{}", o.stdout);
    assert!(
        o.stderr.contains("manifest.yml has no stack: and 1 entry with no cf_stacks (a 1): it is for no stack, so libbuildpack never uses it"),
        "{}",
        o.stderr
    );
    for stack in ["''", "\"\""] {
        std::fs::write(
            bp.path().join("manifest.yml"),
            format!("stack: {stack}\n{m}"),
        )
        .unwrap();
        let (_, j) = inspect(bp.path(), &[], 1);
        assert_eq!(
            j.unwrap()["stacks"],
            json!([]),
            "stack: {stack} is no stack"
        );
    }
    std::fs::write(bp.path().join("manifest.yml"), format!("stack: s4\n{m}")).unwrap();
    let (o, j) = inspect(bp.path(), &[], 1);
    assert_eq!(j.unwrap()["stacks"][0]["stack"], "s4");
    assert!(!o.stderr.contains("no stack"), "{}", o.stderr);
}

/// Nothing could be checked when every entry is for no stack (merged review, finding 15): exit 1,
/// said on stderr when the report goes to stdout; a manifest with no entry at all still passes.
#[test]
fn inspect_with_every_entry_for_no_stack_fails_as_nothing_checked() {
    let bp = tempfile::tempdir().unwrap();
    let m = "dependencies:\n- {name: a, version: '1', uri: 'http://x/a'}\n- {name: b, version: '1', uri: 'http://x/b', cf_stacks: []}\n";
    std::fs::write(bp.path().join("manifest.yml"), m).unwrap();
    let o = Agc::new(&["inspect", "--buildpack"])
        .arg(bp.path())
        .args(&["--json", "-"])
        .expect_exit(1)
        .run();
    assert!(
        o.stderr.contains(
            "FAIL: nothing could be checked: every entry of manifest.yml (2) is for no stack"
        ),
        "{}",
        o.stderr
    );
    let j: Value = serde_json::from_str(&o.stdout).expect("the JSON report on stdout");
    assert_eq!(j["stacks"], json!([]));
    // The JSON says what the exit code says.
    assert_eq!(j["verdict"], "fail", "{j}");
    assert!(j["for_no_stack"].as_u64().unwrap() > 0, "{j}");
    std::fs::write(
        bp.path().join("manifest.yml"),
        "language: x\ndependencies: []\n",
    )
    .unwrap();
    let (o, _) = inspect(bp.path(), &[], 0);
    assert!(
        !o.stdout.contains("nothing could be checked"),
        "{}",
        o.stdout
    );
}

/// The hex digest of `bytes` by a coreutils tool (md5sum, sha256sum): the tests check the
/// packager's path and the hashes against the system's tools, not against the code under test.
fn digest(tool: &str, bytes: &[u8]) -> String {
    let mut child = std::process::Command::new(tool)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} (coreutils): {e}"));
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn inspect_bad_input_is_exit_2_with_one_line_and_no_report() {
    let d = tempfile::tempdir().unwrap();
    let not_zip = d.path().join("bp.zip");
    std::fs::write(&not_zip, "no zip").unwrap();
    let fixtures = root().join("fixtures/buildpacks");
    let with_manifest = |bytes: &[u8]| {
        let bp = tempfile::tempdir().unwrap();
        std::fs::write(bp.path().join("manifest.yml"), bytes).unwrap();
        bp
    };
    let aliased = with_manifest(
        b"x: &s [a]\ndependencies:\n- {name: a, version: '1', uri: u, cf_stacks: *s}\n",
    );
    let stacks: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let many_stacks = with_manifest(
        format!(
            "dependencies:\n- {{name: a, version: '1', uri: u, cf_stacks: [{}]}}\n",
            stacks.join(", ")
        )
        .as_bytes(),
    );
    let not_utf8 = with_manifest(b"language: x\nstack: \xff\n");
    let symlinked = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        fixtures.join("cached-http/manifest.yml"),
        symlinked.path().join("manifest.yml"),
    )
    .unwrap();
    let cases: Vec<(std::path::PathBuf, Vec<&str>, &str)> = vec![
        (
            fixtures.join("broken-manifest"),
            vec![],
            "broken-manifest/manifest.yml: line 8 column 3: dependencies[1]: missing field `uri`",
        ),
        (fixtures.join("clean"), vec![], "clean: no manifest.yml"),
        (
            fixtures.join("cached-http"),
            vec!["--stack", "cflinuxfs9"],
            "--stack \"cflinuxfs9\": manifest.yml lists no dependency for this stack: expected one of cflinuxfs4, cflinuxfs3",
        ),
        (not_zip.clone(), vec![], "not a buildpack folder or a readable zip"),
        (d.path().join("missing"), vec![], "cannot read"),
        (
            aliased.path().to_path_buf(),
            vec![],
            "manifest.yml: line 1: a YAML anchor or alias",
        ),
        (
            not_utf8.path().to_path_buf(),
            vec![],
            "manifest.yml: line 2 column 8: not UTF-8 text (byte 0xff)",
        ),
        (
            symlinked.path().to_path_buf(),
            vec![],
            "manifest.yml is a symlink, not read",
        ),
        (
            many_stacks.path().to_path_buf(),
            vec![],
            "manifest.yml names 65 stacks: expected at most 64 (a buildpack serves a few); check one with --stack NAME",
        ),
    ];
    for (bp, args, needle) in cases {
        let (o, j) = inspect(&bp, &args, 2);
        assert!(o.stderr.contains(needle), "{needle}: {}", o.stderr);
        assert_eq!(
            o.stderr.trim_end().lines().count(),
            1,
            "one line: {}",
            o.stderr
        );
        assert!(o.stdout.is_empty(), "{}", o.stdout);
        assert!(j.is_none(), "{needle}: no report");
    }
}

/// What a hostile buildpack can put in a manifest and a file name: ESC (an OSC title sequence),
/// BEL and U+202E (right-to-left override).
pub(crate) const HOSTILE: &str = "\u{1b}]0;pwn\u{7}\u{202e}";
/// The secrets [`hostile_buildpack`] holds in its manifest's uri.
pub(crate) const SECRETS: [&str; 2] = ["hunter2pw", "tok3nvalue"];

/// A copy of cached-http whose manifest's language, a dependency's name, version and uri, and a
/// cf_stacks entry hold [`HOSTILE`] (the uri [`SECRETS`] too), with a dependencies/ file named
/// with it. The node entry is still for cflinuxfs4, on deps.example.org.
pub(crate) fn hostile_buildpack() -> tempfile::TempDir {
    let d = copy_fixture("cached-http");
    let manifest = r#"---
language: "fixture\e]0;pwn\a\u202E"
dependencies:
- name: tool
  version: 1.2.3
  uri: http://deps.example.org/tool/tool-1.2.3-linux-x64.tgz
  sha256: dddbffc1e042d387e677870e6b7294cd4b3b9ec068259c96728f37f79ed63809
  cf_stacks: [cflinuxfs4]
  file: dependencies/55a5943812896ba0c4f943e41dbb09c1/tool-1.2.3-linux-x64.tgz
- name: "node\e]0;pwn\a\u202E"
  version: "20.11.1\e]0;pwn\a\u202E"
  uri: "http://user:hunter2pw@deps.example.org/node/node\e]0;pwn\a\u202E.tgz?token=tok3nvalue&v=1"
  sha256: 23bd11fc1e3616c9c39c97716a330b0c9968e6ca6a3df6c715689e7a49525bb8
  cf_stacks: [cflinuxfs4, "evil\e]0;pwn\a\u202E"]
"#;
    std::fs::write(d.path().join("manifest.yml"), manifest).unwrap();
    std::fs::write(
        d.path().join(format!("dependencies/left{HOSTILE}over.tgz")),
        b"x",
    )
    .unwrap();
    d
}

/// Fails when `out` holds ESC (but for the tool's own colour, `ESC [ … m`), BEL or U+202E, or any
/// of [`SECRETS`].
pub(crate) fn assert_no_hostile_bytes(what: &str, out: &str) {
    let mut plain = String::new();
    let mut rest = out;
    while let Some(i) = rest.find("\u{1b}[") {
        plain.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        match tail.find(|c: char| !(c.is_ascii_digit() || c == ';')) {
            Some(j) if tail[j..].starts_with('m') => rest = &tail[j + 1..],
            _ => {
                plain.push('\u{1b}');
                rest = &rest[i + 1..];
            }
        }
    }
    plain.push_str(rest);
    for bad in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!plain.contains(bad), "{what} holds {bad:?} raw:\n{out}");
    }
    for s in SECRETS {
        assert!(!out.contains(s), "{what} holds the secret {s}:\n{out}");
    }
}

#[test]
fn hostile_manifest_text_and_file_names_are_escaped_and_credentials_redacted() {
    let bp = hostile_buildpack();
    // Colour forced, so stdout is what a terminal gets (anstream would strip escapes from a pipe).
    let agc = Agc::new(&["inspect", "--buildpack"])
        .arg(bp.path())
        .env("CLICOLOR_FORCE", "1");
    let json = agc.dir().join("i.json");
    let o = agc.arg("--json").arg(&json).expect_exit(1).run();
    assert_no_hostile_bytes("inspect's stdout", &o.stdout);
    assert_no_hostile_bytes("inspect's stderr", &o.stderr);
    let out = &o.stdout;
    for shown in [
        "(language fixture\\u{1b}]0;pwn\\u{7}\\u{202e})",
        "missing       node\\u{1b}]0;pwn\\u{7}\\u{202e} 20.11.1\\u{1b}]0;pwn\\u{7}\\u{202e} ",
        "http://-redacted-@deps.example.org/node/node",
        "?token=REDACTED&v=1",
        "stack evil\\u{1b}]0;pwn\\u{7}\\u{202e}: 1 dependency",
        "left\\u{1b}]0;pwn\\u{7}\\u{202e}over.tgz",
    ] {
        assert!(out.contains(shown), "{shown} not in:\n{out}");
    }
    let text = std::fs::read_to_string(&json).unwrap();
    for s in SECRETS {
        assert!(!text.contains(s), "the JSON report holds {s}:\n{text}");
    }
    // The JSON keeps the text itself (JSON's own escaping makes it safe to read).
    let j: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["language"], format!("fixture{HOSTILE}"));
    assert_eq!(
        j["stacks"][0]["entries"][1]["uri"]
            .as_str()
            .unwrap()
            .split('?')
            .next_back(),
        Some("token=REDACTED&v=1")
    );
}

/// `--stack` naming a stack the manifest does not serve: the error lists the manifest's stack names
/// escaped (merged review, finding 2), and at most 10 of them.
#[test]
fn inspect_stack_error_escapes_and_bounds_the_manifest_stack_names() {
    let bp = hostile_buildpack();
    let o = Agc::new(&["inspect", "--buildpack"])
        .arg(bp.path())
        .args(&["--stack", "nope"])
        .env("CLICOLOR_FORCE", "1")
        .expect_exit(2)
        .run();
    assert_no_hostile_bytes("inspect --stack's stderr", &o.stderr);
    assert!(
        o.stderr
            .contains("expected one of cflinuxfs4, evil\\u{1b}]0;pwn\\u{7}\\u{202e}"),
        "{}",
        o.stderr
    );
    let many = tempfile::tempdir().unwrap();
    let stacks: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
    std::fs::write(
        many.path().join("manifest.yml"),
        format!(
            "dependencies:\n- {{name: a, version: '1', uri: 'http://x/a', cf_stacks: [{}]}}\n",
            stacks.join(", ")
        ),
    )
    .unwrap();
    let o = Agc::new(&["inspect", "--buildpack"])
        .arg(many.path())
        .args(&["--stack", "nope"])
        .expect_exit(2)
        .run();
    assert!(
        o.stderr
            .contains("expected one of s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 990 more"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
}
