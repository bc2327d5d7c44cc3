//! Flows → verdicts: the [`policy`] (allowlist), the [`judge`] that holds each flow against it,
//! and the [`analysis`] every report is written from, with its verdict and exit code; each flow is
//! then [`explain`]ed by the process and the manifest dependency behind it.

pub mod analysis;
pub mod conclude;
pub mod explain;
pub mod judge;
pub mod notes;
pub mod policy;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No flow was disallowed, and the capture can be trusted.
    Pass,
    /// At least one flow was disallowed (or staging failed).
    Fail,
    /// The capture cannot be trusted: no verdict can be given.
    Inconclusive,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Inconclusive => 3,
        }
    }

    /// The verdict of several runs: a fail if any failed, else inconclusive if any was, else a
    /// pass (none at all is inconclusive).
    pub fn of_all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut any = false;
        let mut worst = Verdict::Pass;
        for v in verdicts {
            any = true;
            worst = match (worst, v) {
                (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
                (Verdict::Inconclusive, _) | (_, Verdict::Inconclusive) => Verdict::Inconclusive,
                _ => Verdict::Pass,
            };
        }
        if any {
            worst
        } else {
            Verdict::Inconclusive
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}
