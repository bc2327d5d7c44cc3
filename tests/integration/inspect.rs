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
        "no file: in the manifest, found at the packager's path"
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
    // node at the packager's path with the bytes the manifest's sha256 is of: all cached.
    let node = format!(
        "dependencies/{}/node-20.11.1-linux-x64.tgz",
        digest(
            "md5sum",
            b"http://deps.example.org/node/node-20.11.1-linux-x64.tgz"
        )
    );
    put(&node, b"node 20.11.1\n");
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
