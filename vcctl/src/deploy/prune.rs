//! Which releases go: one pure policy for every target. A target only carries out the
//! removals (`Target::remove`); it never decides them.

use crate::release::{Receipt, Verdict};

/// How many releases of each kind a target keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Good releases kept for rollback, the current one included.
    pub good: usize,
    /// Failed releases kept for their diagnosis (on a host, set aside in `failed/`).
    pub failed: usize,
}

pub const POLICY: Policy = Policy { good: 5, failed: 5 };

/// The releases to remove after a deploy: good ones beyond the newest `policy.good`, failed
/// ones beyond the newest `policy.failed`. Never the current release, never a pending one
/// (a deploy may be checking it; `unfinished` is for those).
pub fn keep(releases: &[Receipt], current: Option<&str>, policy: Policy) -> Vec<String> {
    let mut newest_first: Vec<&Receipt> = releases.iter().collect();
    newest_first.sort_by(|a, b| b.name.cmp(&a.name));
    let (mut good, mut failed) = (0, 0);
    let mut remove = Vec::new();
    for r in newest_first {
        let (seen, limit) = match r.verdict {
            Verdict::Pending => continue,
            Verdict::Healthy => (&mut good, policy.good),
            Verdict::Failed => (&mut failed, policy.failed),
        };
        *seen += 1;
        if Some(r.name.as_str()) != current && *seen > limit {
            remove.push(r.name.clone());
        }
    }
    remove.sort();
    remove
}

/// The releases a killed deploy left unfinished: pending, and not serving. Taken under the
/// deploy lock, so no deploy is checking them.
pub fn unfinished(releases: &[Receipt], current: Option<&str>) -> Vec<String> {
    releases
        .iter()
        .filter(|r| r.verdict == Verdict::Pending && Some(r.name.as_str()) != current)
        .map(|r| r.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(name: &str, verdict: Verdict) -> Receipt {
        serde_json::from_value(serde_json::json!({
            "name": name, "sha256": "x", "version": null, "git_sha": null, "installed_at": "",
            "source": "", "verdict": verdict,
        }))
        .unwrap()
    }

    fn names(spec: &[(&str, Verdict)]) -> Vec<Receipt> {
        spec.iter().map(|(n, v)| receipt(n, *v)).collect()
    }

    use Verdict::*;

    #[test]
    fn the_newest_good_and_failed_releases_stay() {
        let rs = names(&[("01", Healthy), ("02", Healthy), ("03", Failed), ("04", Healthy), ("05", Failed)]);
        let policy = Policy { good: 2, failed: 1 };
        assert_eq!(keep(&rs, Some("04"), policy), vec!["01", "03"]);
    }

    #[test]
    fn the_current_release_stays_even_when_old_and_pending_ones_are_never_pruned() {
        let rs = names(&[("01", Healthy), ("02", Healthy), ("03", Healthy), ("04", Pending)]);
        let policy = Policy { good: 1, failed: 0 };
        // 01 serves (a rollback went to it): it stays, and counts as one of the good ones.
        assert_eq!(keep(&rs, Some("01"), policy), vec!["02"]);
        assert_eq!(unfinished(&rs, Some("01")), vec!["04"]);
        assert!(unfinished(&rs, Some("04")).is_empty(), "a pending release that serves is not unfinished");
    }

    #[test]
    fn nothing_goes_within_the_limits() {
        let rs = names(&[("01", Healthy), ("02", Failed)]);
        assert!(keep(&rs, None, POLICY).is_empty());
    }
}
