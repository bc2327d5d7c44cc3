//! Which entry `default_versions:` picks for a name: libbuildpack's `FindMatchingVersion` takes the
//! highest version that matches the pattern ("20.11.x", "1.x", "3.2.1"). Written here rather than
//! with the semver crate because buildpack versions are often not semver ("17.0.10_7", "1.22",
//! "2.7.18.1"), and that crate refuses them; the matching needed is this small.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::manifest::read::DefaultVersion;

/// Whether `version` matches `pattern`: each dot-separated part equal, or the pattern's part is
/// "x", "X" or "*" (which also matches every later part); a shorter pattern matches the versions
/// that start with it.
pub fn matches(pattern: &str, version: &str) -> bool {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return false;
    }
    let mut v = version.split('.');
    for p in pattern.split('.') {
        if matches!(p, "x" | "X" | "*") {
            return true;
        }
        if v.next() != Some(p) {
            return false;
        }
    }
    true
}

/// Versions compared part by part: numbers as numbers ("1.10" after "1.9"), then as text.
pub fn compare(a: &str, b: &str) -> Ordering {
    let parts = |s: &'_ str| -> Vec<(u64, String)> {
        s.split(['.', '_', '-', '+'])
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                (digits.parse().unwrap_or(0), p.to_string())
            })
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// For each of `entries` (name, version), whether it is the one `defaults` picks: the highest
/// version of its name that matches the name's pattern. A name given more than one default has
/// none (libbuildpack's `DefaultVersion` refuses it). Entries are grouped by name once, so the
/// work is linear in entries and defaults, not their product.
pub fn defaults(entries: &[(&str, &str)], defaults: &[DefaultVersion]) -> Vec<bool> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (n, _)) in entries.iter().enumerate() {
        by_name.entry(n).or_default().push(i);
    }
    let mut given: HashMap<&str, usize> = HashMap::new();
    for d in defaults {
        *given.entry(d.name.as_str()).or_default() += 1;
    }
    let mut picked = vec![false; entries.len()];
    for d in defaults.iter().filter(|d| given[d.name.as_str()] == 1) {
        let Some(of_name) = by_name.get(d.name.as_str()) else {
            continue;
        };
        let best = of_name
            .iter()
            .filter(|&&i| matches(&d.version, entries[i].1))
            .max_by(|&&a, &&b| compare(entries[a].1, entries[b].1));
        if let Some(&i) = best {
            picked[i] = true;
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_with_wildcards() {
        assert!(matches("20.11.x", "20.11.1"));
        assert!(matches("20.x", "20.11.1"));
        assert!(matches("*", "1.0"));
        assert!(matches("1.2.3", "1.2.3"));
        assert!(!matches("1.2.3", "1.2.4"));
        assert!(!matches("20.11.x", "20.1.1"));
        assert!(matches("17.x", "17.0.10_7"));
        assert!(!matches("", "1"));
    }

    #[test]
    fn the_highest_match_is_the_default() {
        assert_eq!(compare("1.10.0", "1.9.3"), Ordering::Greater);
        assert_eq!(compare("17.0.10_7", "17.0.9_9"), Ordering::Greater);
        let d = [DefaultVersion {
            name: "node".into(),
            version: "20.x".into(),
        }];
        let e = [
            ("node", "20.9.0"),
            ("node", "20.11.1"),
            ("node", "18.19.0"),
            ("ruby", "20.99"),
        ];
        assert_eq!(defaults(&e, &d), [false, true, false, false]);
        let twice = [d[0].clone(), d[0].clone()];
        assert_eq!(
            defaults(&e, &twice),
            [false; 4],
            "two defaults for a name: none"
        );
    }
}
