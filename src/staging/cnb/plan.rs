//! The build plan: what each detect wrote (buildpack.md "Build Plan (TOML)"), the group's
//! resolution as the lifecycle does it (buildpack.md "Phase #1: Detection", and
//! buildpacks/lifecycle phase/detector.go `runTrial`), the Buildpack Plan each build is given
//! ("Buildpack Plan (TOML)") and the entries a build leaves unmet ("Unmet Buildpack Plan Entries").
//!
//! Every buildpack given with --buildpack is required (not optional), as in Cloud Foundry's CNB
//! lifecycle, which puts the named buildpacks in one group in the order given.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::staging::cnb::descriptor::toml_error;

/// One `provides` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Provide {
    pub name: String,
}

/// One `requires` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Require {
    pub name: String,
    #[serde(default)]
    pub metadata: toml::Table,
    /// Not allowed at the top level of an entry (the lifecycle refuses it: `metadata.version`).
    #[serde(default, skip_serializing)]
    pub version: Option<toml::Value>,
}

/// One pairing of `provides` and `requires`: a potential build plan.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Sections {
    #[serde(default)]
    pub provides: Vec<Provide>,
    #[serde(default)]
    pub requires: Vec<Require>,
}

/// What one detect wrote to its `<plan>`: its sections, then the `[[or]]` alternatives.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct BuildPlan {
    #[serde(default)]
    pub provides: Vec<Provide>,
    #[serde(default)]
    pub requires: Vec<Require>,
    #[serde(default)]
    pub or: Vec<Sections>,
}

impl BuildPlan {
    /// Read a detect's `<plan>`; `Err` says where and what is wrong.
    pub fn parse(text: &str) -> Result<BuildPlan, String> {
        let plan: BuildPlan = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        for s in plan.options() {
            if let Some(r) = s.requires.iter().find(|r| r.version.is_some()) {
                return Err(format!(
                    "requires {:?} has a top-level `version` key, which the lifecycle refuses: put it in [requires.metadata] as version",
                    r.name
                ));
            }
            if s.provides.iter().any(|p| p.name.is_empty())
                || s.requires.iter().any(|r| r.name.is_empty())
            {
                return Err("an entry has an empty `name`".into());
            }
        }
        Ok(plan)
    }

    /// `Err` when the plan holds more entries than airgap-check resolves (a bound of its own, not
    /// the lifecycle's: resolving takes time with the number of entries).
    pub fn check_size(&self) -> Result<(), String> {
        let n: usize = self.options().iter().map(Choice::len).sum();
        if n > MAX_ENTRIES {
            return Err(format!(
                "{n} provides and requires in all (its [[or]] alternatives included): airgap-check resolves at most {MAX_ENTRIES} per buildpack"
            ));
        }
        Ok(())
    }

    /// The potential build plans, the top-level one first (buildpack.md: "Each pairing of
    /// `requires` and `provides` sections (at the top level, or inside of an `or` array) is a
    /// potential Build Plan").
    fn options(&self) -> Vec<Choice<'_>> {
        let mut v = vec![Choice {
            provides: &self.provides,
            requires: &self.requires,
        }];
        v.extend(self.or.iter().map(|s| Choice {
            provides: &s.provides,
            requires: &s.requires,
        }));
        v
    }
}

/// One potential build plan of a detect, borrowed.
#[derive(Clone, Copy)]
struct Choice<'a> {
    provides: &'a [Provide],
    requires: &'a [Require],
}

impl Choice<'_> {
    fn len(&self) -> usize {
        self.provides.len() + self.requires.len()
    }
}

/// One dependency of the resolved plan: who provides it, and every requirement of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    /// Indices (in the group) of the buildpacks that provide it.
    pub providers: Vec<usize>,
    pub requires: Vec<Require>,
}

/// The most `provides` and `requires` one detect's plan may hold, `[[or]]` included.
pub const MAX_ENTRIES: usize = 1000;
/// At most this many combinations of `[[or]]` alternatives are tried…
const MAX_TRIALS: usize = 10_000;
/// …and at most this many entries looked at over all of them (a few seconds at most).
const MAX_WORK: usize = 4_000_000;

/// Resolve the group: the first combination of each buildpack's potential plans (left to right,
/// depth first) in which every requirement is provided by the same or an earlier buildpack and
/// every provision is required by the same or a later one. `names` label the buildpacks in the
/// message when nothing resolves (the first combination's reason). The work is bounded: at most
/// [`MAX_TRIALS`] combinations, [`MAX_WORK`] entries in all.
pub fn resolve(plans: &[BuildPlan], names: &[String]) -> Result<Vec<Entry>, String> {
    let options: Vec<Vec<Choice>> = plans.iter().map(BuildPlan::options).collect();
    let total = options
        .iter()
        .try_fold(1usize, |acc, o| acc.checked_mul(o.len()))
        .unwrap_or(usize::MAX);
    let mut first_error = None;
    let mut choice = vec![0usize; plans.len()];
    let (mut tried, mut work) = (0usize, 0usize);
    while tried < total.min(MAX_TRIALS) {
        let trial: Vec<Choice> = choice.iter().zip(&options).map(|(c, o)| o[*c]).collect();
        work += trial.iter().map(Choice::len).sum::<usize>();
        if tried > 0 && work > MAX_WORK {
            break;
        }
        tried += 1;
        match trial_plan(&trial, names) {
            Ok(entries) => return Ok(entries),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        next(&mut choice, &options);
    }
    let mut why = first_error.unwrap_or_else(|| "no buildpack in the group".into());
    if total > 1 {
        why.push_str(&format!(
            " (and none of the other {} combinations of their [[or]] plans resolves{})",
            tried - 1,
            if tried < total {
                format!(
                    ", of the first {tried} of {} tried: airgap-check tries at most {MAX_TRIALS} combinations and {MAX_WORK} entries",
                    if total == usize::MAX { "too many to count".to_string() } else { total.to_string() }
                )
            } else {
                String::new()
            }
        ));
    }
    Err(why)
}

/// The next combination: the last buildpack's alternatives vary fastest.
fn next(choice: &mut [usize], options: &[Vec<Choice>]) {
    for i in (0..choice.len()).rev() {
        choice[i] += 1;
        if choice[i] < options[i].len() {
            return;
        }
        choice[i] = 0;
    }
}

/// One trial (lifecycle `newDepMap`): for each buildpack in order, its provides then its requires.
fn trial_plan(trial: &[Choice], names: &[String]) -> Result<Vec<Entry>, String> {
    #[derive(Default)]
    struct Dep<'a> {
        providers: Vec<usize>,
        requires: Vec<&'a Require>,
        extra: Vec<usize>,
        early: Vec<usize>,
    }
    // The names in the order first seen, and each one's dependency.
    let mut order: Vec<&str> = Vec::new();
    let mut deps: HashMap<&str, Dep> = HashMap::new();
    for (i, s) in trial.iter().enumerate() {
        for p in s.provides {
            let d = deps.entry(&p.name).or_insert_with(|| {
                order.push(&p.name);
                Dep::default()
            });
            d.extra.push(i);
        }
        for r in s.requires {
            let d = deps.entry(&r.name).or_insert_with(|| {
                order.push(&r.name);
                Dep::default()
            });
            let extra = std::mem::take(&mut d.extra);
            d.providers.extend(extra);
            if d.providers.is_empty() {
                d.early.push(i);
            } else {
                d.requires.push(r);
            }
        }
    }
    let name = |i: usize| names.get(i).cloned().unwrap_or_else(|| i.to_string());
    for n in &order {
        if let Some(&i) = deps[n].early.first() {
            return Err(format!(
                "buildpack {i} ({}) requires {n:?}, which neither it nor a buildpack before it provides",
                name(i)
            ));
        }
    }
    for n in &order {
        if let Some(&i) = deps[n].extra.first() {
            return Err(format!(
                "buildpack {i} ({}) provides {n:?}, which neither it nor a buildpack after it requires",
                name(i)
            ));
        }
    }
    Ok(order
        .iter()
        .map(|n| {
            let d = deps.remove(n).unwrap_or_default();
            Entry {
                name: n.to_string(),
                providers: d.providers,
                requires: d.requires.into_iter().cloned().collect(),
            }
        })
        .collect())
}

/// The Buildpack Plan of buildpack `i`: every requirement of each entry it provides (lifecycle
/// `Plan.Find`).
pub fn buildpack_plan(entries: &[Entry], i: usize) -> Vec<Require> {
    entries
        .iter()
        .filter(|e| e.providers.contains(&i))
        .flat_map(|e| e.requires.iter().cloned())
        .collect()
}

/// The Buildpack Plan as TOML: `[[entries]]` with `name` and `metadata`; `Err` when it cannot be
/// written as TOML (never given as an empty plan instead).
pub fn plan_toml(entries: &[Require]) -> Result<String, String> {
    #[derive(Serialize)]
    struct Out<'a> {
        entries: &'a [Require],
    }
    toml::to_string(&Out { entries }).map_err(|e| e.to_string())
}

/// What build.toml says: the entries left for a later provider.
#[derive(Debug, Default, Deserialize)]
pub struct BuildToml {
    #[serde(default)]
    pub unmet: Vec<Provide>,
}

/// After a build given `given`, with `unmet` left: the plan for the buildpacks after it, without
/// the entries it met (lifecycle `Plan.Filter`); `Err` when an unmet name is not in its plan.
pub fn after_build(
    entries: Vec<Entry>,
    given: &[Require],
    unmet: &[Provide],
) -> Result<Vec<Entry>, String> {
    if let Some(u) = unmet
        .iter()
        .find(|u| !given.iter().any(|g| g.name == u.name))
    {
        return Err(format!(
            "build.toml: unmet.name {:?} must name an entry of its Buildpack Plan",
            u.name
        ));
    }
    let met: Vec<&str> = given
        .iter()
        .map(|g| g.name.as_str())
        .filter(|n| !unmet.iter().any(|u| u.name == *n))
        .collect();
    Ok(entries
        .into_iter()
        .filter(|e| !e.requires.iter().any(|r| met.contains(&r.name.as_str())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> BuildPlan {
        BuildPlan::parse(text).unwrap()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("bp{i}")).collect()
    }

    #[test]
    fn a_provide_met_by_a_later_require_resolves() {
        let first = plan("[[provides]]\nname = \"tool\"\n");
        let second =
            plan("[[requires]]\nname = \"tool\"\n[requires.metadata]\nversion = \"1.2\"\n");
        let entries = resolve(&[first, second], &names(2)).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].providers, [0]);
        let bp0 = buildpack_plan(&entries, 0);
        assert_eq!(bp0.len(), 1);
        let t = plan_toml(&bp0).unwrap();
        assert!(t.contains("[[entries]]\nname = \"tool\""), "{t}");
        assert!(t.contains("version = \"1.2\""), "{t}");
        assert!(buildpack_plan(&entries, 1).is_empty());
        // An empty plan (a detect that wrote nothing) resolves to nothing.
        assert_eq!(resolve(&[BuildPlan::default()], &names(1)).unwrap(), []);
    }

    #[test]
    fn unmet_requires_and_unused_provides_fail_with_the_buildpack_named() {
        let req = plan("[[requires]]\nname = \"node\"\n");
        let prov = plan("[[provides]]\nname = \"node\"\n");
        let e = resolve(&[req.clone(), prov.clone()], &names(2)).unwrap_err();
        assert!(
            e.starts_with("buildpack 0 (bp0) requires \"node\", which neither it nor a buildpack before it provides"),
            "{e}"
        );
        let e = resolve(std::slice::from_ref(&prov), &names(1)).unwrap_err();
        assert!(e.contains("buildpack 0 (bp0) provides \"node\", which neither it nor a buildpack after it requires"), "{e}");
        // The same buildpack may provide and require.
        let both = plan("[[provides]]\nname = \"node\"\n[[requires]]\nname = \"node\"\n");
        assert!(resolve(&[both], &names(1)).is_ok());
    }

    #[test]
    fn or_alternatives_are_tried_left_to_right_depth_first() {
        // bp0 provides a only in its second option; bp1 requires a.
        let bp0 = plan("[[provides]]\nname = \"b\"\n[[or]]\n[[or.provides]]\nname = \"a\"\n");
        let bp1 = plan("[[requires]]\nname = \"a\"\n");
        let entries = resolve(&[bp0.clone(), bp1], &names(2)).unwrap();
        assert_eq!(entries[0].name, "a");
        let e = resolve(&[bp0], &names(1)).unwrap_err();
        assert!(e.contains("and none of the other 1 combinations"), "{e}");
    }

    /// A plan of `alternatives` [[or]] sections after the top-level one, each with `n` provides
    /// that nothing requires.
    fn wide(alternatives: usize, n: usize) -> String {
        let provides = |prefix: &str| -> String {
            (0..n)
                .map(|k| format!("[[{prefix}provides]]\nname = \"dep-{k}\"\n"))
                .collect()
        };
        let mut t = provides("");
        for _ in 0..alternatives {
            t.push_str("[[or]]\n");
            t.push_str(&provides("or."));
        }
        t
    }

    #[test]
    fn the_work_of_resolving_is_bounded() {
        // 8 buildpacks of 11 plans of 90 entries each (990, under the cap): 214,358,881
        // combinations, none resolving; at most 4,000,000 entries are looked at, in well under a
        // second (optimised; a few seconds in a debug build).
        let plans: Vec<BuildPlan> = (0..8).map(|_| plan(&wide(10, 90))).collect();
        assert!(plans.iter().all(|p| p.check_size().is_ok()));
        let t = std::time::Instant::now();
        let e = resolve(&plans, &names(8)).unwrap_err();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            t.elapsed()
        );
        assert!(
            e.contains("(and none of the other 5554 combinations of their [[or]] plans resolves, of the first 5555 of 214358881 tried: airgap-check tries at most 10000 combinations and 4000000 entries)"),
            "{e}"
        );
        // Over the cap: the detect's plan is refused.
        let e = plan(&wide(10, 91)).check_size().unwrap_err();
        assert!(
            e.starts_with("1001 provides and requires in all (its [[or]] alternatives included)"),
            "{e}"
        );
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(
            BuildPlan::parse("[[requires]]\nname = \"x\"\nversion = \"1\"\n")
                .unwrap_err()
                .contains("top-level `version`")
        );
        assert!(BuildPlan::parse("[[provides]]\nname = \"\"\n").is_err());
        let e = BuildPlan::parse("[[provides]\n").unwrap_err();
        assert!(e.starts_with("line 1 column"), "{e}");
    }

    #[test]
    fn a_met_entry_is_not_given_to_later_providers() {
        let both = |s| plan(s);
        let p0 = both("[[provides]]\nname = \"x\"\n");
        let p1 = both("[[provides]]\nname = \"x\"\n[[requires]]\nname = \"x\"\n");
        let entries = resolve(&[p0, p1], &names(2)).unwrap();
        assert_eq!(entries[0].providers, [0, 1]);
        let given = buildpack_plan(&entries, 0);
        let after = after_build(entries.clone(), &given, &[]).unwrap();
        assert!(buildpack_plan(&after, 1).is_empty());
        let unmet = [Provide { name: "x".into() }];
        let after = after_build(entries.clone(), &given, &unmet).unwrap();
        assert_eq!(buildpack_plan(&after, 1).len(), 1);
        let wrong = [Provide { name: "y".into() }];
        assert!(after_build(entries, &given, &wrong).is_err());
    }
}
