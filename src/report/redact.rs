//! Credentials kept out of what airgap-check writes. A manifest's `uri` or a command's argv may
//! hold a password, a token or a signed URL's signature; every report, the console and the GitHub
//! output show them redacted, as libbuildpack's own logs do (`filterURI`). Only the output is
//! redacted: matching flows to manifest entries uses the raw strings.

use std::borrow::Cow;

use url::Url;

/// What a URL's user information becomes (libbuildpack's word).
pub const USERINFO: &str = "-redacted-";
/// What a secret query value, or a credential given to a command, becomes.
pub const SECRET: &str = "REDACTED";

/// Query keys whose value is a secret (matched case-insensitively anywhere in the key, so
/// `access_token`, `X-Amz-Signature` and `api_key` are all secrets).
const SECRET_KEYS: [&str; 8] = [
    "token",
    "sig",
    "signature",
    "key",
    "password",
    "secret",
    "auth",
    "credential",
];

/// Options whose next argument (or `--opt=value`) is a credential: curl's and wget's.
const SECRET_OPTIONS: [&str; 9] = [
    "-u",
    "--oauth2-bearer",
    "--user",
    "--password",
    "--proxy-user",
    "-U",
    "--http-password",
    "--ftp-password",
    "--proxy-password",
];

/// Options whose next argument is a header.
const HEADER_OPTIONS: [&str; 2] = ["-H", "--header"];

/// Options whose next argument is a proxy, `user:pass@host` with or without a scheme.
const PROXY_OPTIONS: [&str; 2] = ["-x", "--proxy"];

/// Headers whose value is a credential.
const SECRET_HEADERS: [&str; 6] = [
    "authorization:",
    "proxy-authorization:",
    "private-token:",
    "x-api-key:",
    "x-auth-token:",
    "cookie:",
];

/// `GET /x?token=t HTTP/1.1` → `GET /x?token=REDACTED HTTP/1.1`: an HTTP request line (or any
/// text) with the target, its second word, through [`redact_uri`].
pub fn redact_request(line: &str) -> Cow<'_, str> {
    let mut words = line.splitn(3, ' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Cow::Borrowed(line);
    };
    match redact_uri(target) {
        Cow::Borrowed(_) => Cow::Borrowed(line),
        Cow::Owned(t) => Cow::Owned(match words.next() {
            Some(rest) => format!("{method} {t} {rest}"),
            None => format!("{method} {t}"),
        }),
    }
}

/// `https://u:p@h/x?token=t&v=1` → `https://-redacted-@h/x?token=REDACTED&v=1`. Borrowed when
/// there was nothing to redact; text that is not a URL has only its query part (after `?`)
/// redacted.
pub fn redact_uri(s: &str) -> Cow<'_, str> {
    let Ok(mut u) = Url::parse(s) else {
        return redact_loose(s);
    };
    let mut changed = false;
    if !u.username().is_empty() || u.password().is_some() {
        changed = u.set_password(None).is_ok() && u.set_username(USERINFO).is_ok();
    }
    if let Some(Cow::Owned(q)) = u.query().map(redact_query) {
        u.set_query(Some(&q));
        changed = true;
    }
    if changed {
        Cow::Owned(u.into())
    } else {
        Cow::Borrowed(s)
    }
}

/// Text that does not parse as a URL ("/x?token=t", "h/x?sig=1"): its userinfo when it has a
/// `scheme://user@` start, and the secret values of its query.
fn redact_loose(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    if let Some(start) = s.find("://").map(|i| i + 3) {
        let end = s[start..]
            .find(['/', '?', '#'])
            .map_or(s.len(), |i| start + i);
        if let Some(at) = s[start..end].rfind('@') {
            out = Cow::Owned(format!("{}{USERINFO}{}", &s[..start], &s[start + at..]));
        }
    }
    let Some(q) = out.find('?') else {
        return out;
    };
    let end = out[q..].find('#').map_or(out.len(), |i| q + i);
    match redact_query(&out[q + 1..end]) {
        Cow::Borrowed(_) => out,
        Cow::Owned(query) => Cow::Owned(format!("{}?{query}{}", &out[..q], &out[end..])),
    }
}

/// `token=t&v=1` → `token=REDACTED&v=1`: the value of every pair whose key names a secret, every
/// other byte as it was.
fn redact_query(q: &str) -> Cow<'_, str> {
    if !q.split(['&', ';']).any(is_secret_pair) {
        return Cow::Borrowed(q);
    }
    let mut out = String::with_capacity(q.len());
    for (i, pair) in q.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let parts: Vec<String> = pair
            .split(';')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if is_secret_pair(p) => format!("{k}={SECRET}"),
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&parts.join(";"));
    }
    Cow::Owned(out)
}

/// Whether `key=value` has a non-empty value under a key that names a secret.
fn is_secret_pair(pair: &str) -> bool {
    let Some((key, value)) = pair.split_once('=') else {
        return false;
    };
    let key: String = url::form_urlencoded::parse(key.as_bytes())
        .map(|(k, _)| k.to_lowercase())
        .collect();
    !value.is_empty() && SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// An argv with its credentials redacted: every URL in a word through [`redact_uri`], the value
/// after `-u`/`--user`/`--password`/`--proxy-user` (and wget's password options, joined with `=`
/// or not) blanked, and an `Authorization:` or `Proxy-Authorization:` header's value after
/// `-H`/`--header` blanked. A word holding a whole script (`sh -c "curl -u u:p …"`) is redacted
/// word by word the same way.
pub fn redact_argv(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut next = Next::Plain;
    for w in argv {
        let (word, then) = redact_word(w, next);
        out.push(word);
        next = then;
    }
    out
}

/// What the word before made of this one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Plain,
    /// The value of a credential option.
    Secret,
    /// The value of a header option.
    Header,
    /// The value of a proxy option.
    Proxy,
}

fn redact_word(w: &str, next: Next) -> (String, Next) {
    // A header or a proxy never starts with `-`: such a word after `-H`/`-x` is an option (wget's
    // `-H` and `-x` take no value), redacted as one.
    match next {
        Next::Secret => return (SECRET.to_string(), Next::Plain),
        Next::Header if !w.starts_with('-') => return (redact_header(w), Next::Plain),
        Next::Proxy if !w.starts_with('-') => return (redact_proxy(w).into_owned(), Next::Plain),
        _ => {}
    }
    if SECRET_OPTIONS.contains(&w) {
        return (w.to_string(), Next::Secret);
    }
    if HEADER_OPTIONS.contains(&w) {
        return (w.to_string(), Next::Header);
    }
    if PROXY_OPTIONS.contains(&w) {
        return (w.to_string(), Next::Proxy);
    }
    if let Some((opt, _)) = w.split_once('=') {
        if SECRET_OPTIONS.contains(&opt) {
            return (format!("{opt}={SECRET}"), Next::Plain);
        }
        if HEADER_OPTIONS.contains(&opt) {
            return (
                format!("{opt}={}", redact_header(&w[opt.len() + 1..])),
                Next::Plain,
            );
        }
        if PROXY_OPTIONS.contains(&opt) {
            return (
                format!("{opt}={}", redact_proxy(&w[opt.len() + 1..])),
                Next::Plain,
            );
        }
    }
    // curl's `-HAuthorization: x` and `-xuser:pass@proxy`, attached.
    if let Some(h) = w.strip_prefix("-H").filter(|v| !v.is_empty()) {
        return (format!("-H{}", redact_header(h)), Next::Plain);
    }
    if let Some(p) = w.strip_prefix("-x").filter(|v| v.contains('@')) {
        return (format!("-x{}", redact_proxy(p)), Next::Plain);
    }
    // curl's `-uuser:pass`.
    if w.strip_prefix("-u")
        .is_some_and(|v| !v.is_empty() && !v.starts_with('-'))
    {
        return (format!("-u{SECRET}"), Next::Plain);
    }
    if w.contains(char::is_whitespace) {
        return (redact_script(w), Next::Plain);
    }
    (redact_urls_in(w).into_owned(), Next::Plain)
}

/// `Authorization: Bearer x` → `Authorization: REDACTED`; any other header as it is (its URLs
/// redacted).
fn redact_header(h: &str) -> String {
    // Past the spaces and quotes a script leaves before it (`"Authorization: x"`).
    let bare = h.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '\'' | '"'));
    let lower = bare.to_ascii_lowercase();
    match SECRET_HEADERS.iter().find(|p| lower.starts_with(*p)) {
        Some(p) => {
            let lead = h.len() - bare.len();
            format!("{} {SECRET}", &h[..lead + p.len()])
        }
        None => redact_urls_in(h).into_owned(),
    }
}

/// A proxy's `user:pass@host:port`, with a scheme or not: its userinfo becomes `-redacted-`.
fn redact_proxy(p: &str) -> Cow<'_, str> {
    if p.contains("://") {
        return redact_uri(p);
    }
    match p.rfind('@') {
        Some(at) => Cow::Owned(format!("{USERINFO}{}", &p[at..])),
        None => Cow::Borrowed(p),
    }
}

/// Every `scheme://…` run in a word (up to whitespace or a quote) through [`redact_uri`].
fn redact_urls_in(w: &str) -> Cow<'_, str> {
    if !w.contains("://") && !w.contains('?') {
        return Cow::Borrowed(w);
    }
    let ends = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | '`');
    let mut out = String::with_capacity(w.len());
    let mut rest = w;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        let end = rest[i..].find(ends).map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        out.push_str(&redact_uri(&rest[start..end]));
        rest = &rest[end..];
    }
    if out.is_empty() {
        return redact_loose(w);
    }
    out.push_str(rest);
    if out == w {
        Cow::Borrowed(w)
    } else {
        Cow::Owned(out)
    }
}

/// Whether a script's word opens a credential header (`Authorization:` after `-H`, or attached:
/// `-H"Authorization:`, `--header="Authorization:`): `Some(quoted)`, where a quoted one runs on
/// to its closing quote.
fn secret_header_start(word: &str, next: Next) -> Option<bool> {
    let value = if next == Next::Header {
        word
    } else {
        let v = HEADER_OPTIONS.iter().find_map(|o| word.strip_prefix(o))?;
        v.strip_prefix('=').unwrap_or(v)
    };
    let bare = value.trim_start_matches(['\'', '"']);
    let lower = bare.to_ascii_lowercase();
    SECRET_HEADERS
        .contains(&lower.as_str())
        .then_some(value != bare)
}

/// A script in one word: its whitespace-separated words redacted as an argv's, and an
/// `Authorization:` header's words blanked up to the end of its quotes.
fn redact_script(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    let mut next = Next::Plain;
    let mut in_header = false;
    for piece in script.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end();
        let space = &piece[word.len()..];
        let bare = word.trim_start_matches(['\'', '"']);
        if in_header {
            // Inside the quoted header: nothing of it is shown but the closing quote.
            if let Some(q) = word.chars().last().filter(|c| matches!(c, '\'' | '"')) {
                out.push(q);
                out.push_str(space);
                in_header = false;
            }
            continue;
        }
        if let Some(quoted) = secret_header_start(word, next) {
            out.push_str(word);
            next = Next::Plain;
            if quoted && !word.ends_with(['\'', '"']) {
                out.push(' ');
                out.push_str(SECRET);
                in_header = true;
            } else {
                out.push_str(space);
                next = Next::Secret;
            }
            continue;
        }
        let quote = &word[..word.len() - bare.len()];
        let (redacted, then) = redact_word(bare, next);
        out.push_str(quote);
        out.push_str(&redacted);
        out.push_str(space);
        next = then;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_lose_their_userinfo_and_secret_query_values() {
        let table: &[(&str, &str)] = &[
            ("https://h/x.tgz", "https://h/x.tgz"),
            (
                "https://u:p@h/x?token=t",
                "https://-redacted-@h/x?token=REDACTED",
            ),
            ("https://tok@h/x", "https://-redacted-@h/x"),
            (
                "https://h/x?v=1&X-Amz-Signature=abc&X-Amz-Credential=c&a=",
                "https://h/x?v=1&X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&a=",
            ),
            (
                "https://h/x?api_key=k#frag",
                "https://h/x?api_key=REDACTED#frag",
            ),
            (
                "https://h/x?sig=s;password=p",
                "https://h/x?sig=REDACTED;password=REDACTED",
            ),
            (
                "https://h/x?Auth=a&secret=s",
                "https://h/x?Auth=REDACTED&secret=REDACTED",
            ),
            ("/x?token=t&v=2", "/x?token=REDACTED&v=2"),
            ("weird://u:p@h h/x", "weird://-redacted-@h h/x"),
            ("not a url", "not a url"),
        ];
        for (raw, want) in table {
            assert_eq!(redact_uri(raw), *want, "{raw}");
        }
        assert!(matches!(redact_uri("https://h/x?v=1"), Cow::Borrowed(_)));
        assert_eq!(
            redact_request("GET /x?token=t&v=1 HTTP/1.1"),
            "GET /x?token=REDACTED&v=1 HTTP/1.1"
        );
        assert_eq!(
            redact_request("GET http://u:p@h/x HTTP/1.1"),
            "GET http://-redacted-@h/x HTTP/1.1"
        );
        assert_eq!(redact_request("DNS query A h"), "DNS query A h");
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn argv_loses_credentials_and_keeps_the_rest() {
        let table: &[(&[&str], &[&str])] = &[
            (
                &["curl", "-u", "u:p", "https://h/x"],
                &["curl", "-u", "REDACTED", "https://h/x"],
            ),
            (&["curl", "-uu:p", "https://h/x"], &["curl", "-uREDACTED", "https://h/x"]),
            (
                &["curl", "--user", "u:p", "--proxy-user", "q:r", "-o", "out"],
                &["curl", "--user", "REDACTED", "--proxy-user", "REDACTED", "-o", "out"],
            ),
            (
                &["wget", "--password=p", "--user=u", "https://h/x?token=t"],
                &["wget", "--password=REDACTED", "--user=REDACTED", "https://h/x?token=REDACTED"],
            ),
            (
                &["curl", "-H", "Authorization: Bearer abc", "-H", "Accept: */*"],
                &["curl", "-H", "Authorization: REDACTED", "-H", "Accept: */*"],
            ),
            (
                &["curl", "--header", "proxy-authorization: Basic xyz"],
                &["curl", "--header", "proxy-authorization: REDACTED"],
            ),
            (
                &["wget", "--header=Authorization: token abc"],
                &["wget", "--header=Authorization: REDACTED"],
            ),
            (
                &["curl", "-fsSL", "https://tok@h/x", "url=https://u:p@h/y"],
                &["curl", "-fsSL", "https://-redacted-@h/x", "url=https://-redacted-@h/y"],
            ),
            (
                &["sh", "-c", "curl -u u:p https://a:b@h/x?sig=s -H 'Authorization: Bearer t' -o f"],
                &[
                    "sh",
                    "-c",
                    "curl -u REDACTED https://-redacted-@h/x?sig=REDACTED -H 'Authorization: REDACTED' -o f",
                ],
            ),
            (&["nc", "h", "80"], &["nc", "h", "80"]),
            (
                &["wget", "-H", "--password=p", "-x", "--user=u", "-x", "-u", "s"],
                &["wget", "-H", "--password=REDACTED", "-x", "--user=REDACTED", "-x", "-u", "REDACTED"],
            ),
            // Attached and quoted header forms, wider header names, bearer and proxy options.
            (
                &["curl", "-HAuthorization: Bearer abc", "-HAccept: */*"],
                &["curl", "-HAuthorization: REDACTED", "-HAccept: */*"],
            ),
            (
                &["curl", "-H", "\"Authorization: Bearer abc\""],
                &["curl", "-H", "\"Authorization: REDACTED"],
            ),
            (
                &["curl", "-H", "PRIVATE-TOKEN: glpat-abc", "-H", "X-Api-Key: k1"],
                &["curl", "-H", "PRIVATE-TOKEN: REDACTED", "-H", "X-Api-Key: REDACTED"],
            ),
            (
                &["curl", "--header=Cookie: s=abc", "-H", "x-auth-token: t"],
                &["curl", "--header=Cookie: REDACTED", "-H", "x-auth-token: REDACTED"],
            ),
            (
                &["curl", "--oauth2-bearer", "tok", "--oauth2-bearer=tok"],
                &["curl", "--oauth2-bearer", "REDACTED", "--oauth2-bearer=REDACTED"],
            ),
            (
                &["curl", "-x", "u:p@proxy:8080", "--proxy", "http://u:p@proxy:3128/"],
                &["curl", "-x", "-redacted-@proxy:8080", "--proxy", "http://-redacted-@proxy:3128/"],
            ),
            (
                &["curl", "--proxy=u:p@proxy", "-xu:p@proxy", "-x", "proxy:8080"],
                &["curl", "--proxy=-redacted-@proxy", "-x-redacted-@proxy", "-x", "proxy:8080"],
            ),
            (
                &["sh", "-c", "curl --header=\"Authorization: Bearer abc\" -o f https://h/x"],
                &["sh", "-c", "curl --header=\"Authorization: REDACTED\" -o f https://h/x"],
            ),
            (
                &["sh", "-c", "curl -H\"Authorization: Bearer abc\" -o f"],
                &["sh", "-c", "curl -H\"Authorization: REDACTED\" -o f"],
            ),
            (
                &["sh", "-c", "curl -H 'X-Api-Key: k1 k2' --oauth2-bearer t -x u:p@h:1 https://h/"],
                &[
                    "sh",
                    "-c",
                    "curl -H 'X-Api-Key: REDACTED' --oauth2-bearer REDACTED -x -redacted-@h:1 https://h/",
                ],
            ),
            (
                &["sh", "-c", "sleep 30", "-u", "user:hunter2pw"],
                &["sh", "-c", "sleep 30", "-u", "REDACTED"],
            ),
            (&["curl", "-u"], &["curl", "-u"]),
        ];
        for (raw, want) in table {
            assert_eq!(redact_argv(&argv(raw)), argv(want), "{raw:?}");
        }
    }
}
