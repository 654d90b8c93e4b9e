//! Whose are the AWS resources found under a stack's names and tags. Pure: vcctl changes or
//! deletes only what its tags say is this stack's, of this project (`id:` in the stack
//! file); resources an older vcctl made before stacks had ids are adopted (tagged), and
//! anything else is refused, all at once, before anything changes.

use std::path::Path;

use crate::cloud::aws::{Owner, Stamp};
use crate::error::Failure;

/// A found resource: what it is, in words, and what its tags say.
pub struct Claim<'a> {
    pub what: String,
    pub owner: &'a Owner,
}

/// The verdict on one resource.
#[derive(Debug, PartialEq, Eq)]
pub enum Standing {
    /// Tagged with this stack's id.
    Ours,
    /// Made by vcctl for a stack of this name before stacks had ids: to be tagged with it.
    Unclaimed,
    /// Someone else's: the reason.
    Foreign(String),
}

/// Refuses (exit 3) to act on `what` unless it is stack `stack`'s (or an older vcctl's).
pub fn ensure_ours(owner: &Owner, what: &str, stack: &str, id: Option<&str>) -> Result<(), Failure> {
    match standing(owner, stack, id) {
        Standing::Foreign(why) => Err(Failure::invalid(format!("{what} is not stack `{stack}`'s: {why}"), None)),
        Standing::Ours | Standing::Unclaimed => Ok(()),
    }
}

pub fn standing(owner: &Owner, stack: &str, id: Option<&str>) -> Standing {
    match (&owner.stack_id, id) {
        (Some(theirs), Some(ours)) if theirs == ours => Standing::Ours,
        (Some(theirs), Some(ours)) => Standing::Foreign(format!(
            "it belongs to another project's stack `{stack}` (stack id {theirs}, not {ours})"
        )),
        (Some(theirs), None) => {
            Standing::Foreign(format!("it is tagged with stack id {theirs}, and the stack file has no `id:`"))
        }
        (None, _) if owner.stack.as_deref() == Some(stack) && owner.managed_by.as_deref() == Some("vcctl") => {
            Standing::Unclaimed
        }
        (None, _) => Standing::Foreign(format!(
            "it has the name vcctl gives stack `{stack}`'s resources, but not their tags (vcctl:stack={stack}, \
             vcctl:managed-by=vcctl): vcctl did not make it"
        )),
    }
}

/// The resources to adopt (indexes into `claims`), or one refusal naming every resource
/// that is not this stack's (exit 3).
pub fn check(claims: &[Claim], stack: &str, id: Option<&str>, file: &Path) -> Result<Vec<usize>, Failure> {
    let mut adopt = Vec::new();
    let mut foreign = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        match standing(claim.owner, stack, id) {
            Standing::Ours => {}
            Standing::Unclaimed => adopt.push(i),
            Standing::Foreign(why) => foreign.push(format!("{}: {why}", claim.what)),
        }
    }
    if foreign.is_empty() {
        return Ok(adopt);
    }
    let ids: Vec<&str> = claims.iter().filter_map(|c| c.owner.stack_id.as_deref()).filter(|t| Some(*t) != id).collect();
    let hint = match (id, ids.first()) {
        (None, Some(theirs)) => format!(
            "if these are this stack's (its `id:` was lost), add `id: {theirs}` to `{}`; otherwise give this stack another name",
            file.display()
        ),
        _ => format!(
            "two projects (or a hand-made resource) share the names of stack `{stack}` in this account and region: \
             rename this stack in `{}`, or remove what is not its",
            file.display()
        ),
    };
    Err(Failure::invalid(
        format!("vcctl changes nothing of stack `{stack}`, because these are not its own:\n  {}", foreign.join("\n  ")),
        Some(hint),
    ))
}

/// A new stack id: 16 random hex digits.
pub fn new_id() -> String {
    random_hex(16)
}

/// `len` random hex digits, from the thread's CSPRNG (ids, and the secrets vcctl makes).
pub fn random_hex(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect()
}

/// A resource found by its name is this stack's (its stack-id tag), or an error naming it.
pub fn owned(what: &str, id: Option<&str>, stamp: &Stamp) -> anyhow::Result<()> {
    if id == Some(stamp.id.as_str()) {
        return Ok(());
    }
    anyhow::bail!(Failure::invalid(
        format!(
            "{what} carries stack id {}, not this stack's {}: another project's stack `{}`, or a copy",
            id.unwrap_or("(none)"),
            stamp.id,
            stamp.stack
        ),
        Some("give this stack another `name:`, or remove what the other one made with its own `vcctl destroy`".into()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(stack: Option<&str>, managed: Option<&str>, id: Option<&str>) -> Owner {
        Owner { stack: stack.map(Into::into), managed_by: managed.map(Into::into), stack_id: id.map(Into::into) }
    }

    #[test]
    fn resources_are_ours_unclaimed_or_foreign() {
        let ours = owner(Some("fra"), Some("vcctl"), Some("aaaa"));
        assert_eq!(standing(&ours, "fra", Some("aaaa")), Standing::Ours);
        assert!(matches!(standing(&ours, "fra", Some("bbbb")), Standing::Foreign(w) if w.contains("another project")));
        assert!(matches!(standing(&ours, "fra", None), Standing::Foreign(w) if w.contains("no `id:`")));
        let old = owner(Some("fra"), Some("vcctl"), None);
        assert_eq!(standing(&old, "fra", Some("aaaa")), Standing::Unclaimed);
        let by_hand = owner(None, None, None);
        assert!(
            matches!(standing(&by_hand, "fra", Some("aaaa")), Standing::Foreign(w) if w.contains("did not make it"))
        );
        let other_stack = owner(Some("fra-eu"), Some("vcctl"), None);
        assert!(matches!(standing(&other_stack, "fra", Some("aaaa")), Standing::Foreign(_)));
    }

    #[test]
    fn one_refusal_names_every_foreign_resource() {
        let (a, b, c) = (
            owner(Some("fra"), Some("vcctl"), Some("x")),
            owner(Some("fra"), Some("vcctl"), None),
            owner(None, None, None),
        );
        let claims = [
            Claim { what: "instance i-1".into(), owner: &a },
            Claim { what: "key pair vcctl-fra".into(), owner: &b },
            Claim { what: "alarm vcctl-fra-cpu-high".into(), owner: &c },
        ];
        let err = check(&claims, "fra", Some("y"), Path::new("stacks/fra.yaml")).unwrap_err().to_string();
        assert!(
            err.contains("instance i-1: it belongs to another project") && err.contains("alarm vcctl-fra-cpu-high"),
            "{err}"
        );
        assert!(!err.contains("key pair"), "the old, unclaimed one is not refused: {err}");
        assert_eq!(check(&claims[1..2], "fra", Some("y"), Path::new("f")).unwrap(), vec![0]);
        assert_eq!(new_id().len(), 16);
    }
}
