//! Base grouping: which base each candidate service is compared against, so that the services
//! sharing a base share one diff.

use std::collections::{BTreeMap, BTreeSet};

/// The candidates by base.
pub(crate) struct Groups<'a> {
    /// Base → the candidates compared against it, by name.
    pub by_base: BTreeMap<&'a str, Vec<&'a str>>,
    /// The candidates with no base: never deployed (no record) and no `--since`.
    pub no_base: Vec<&'a str>,
}

/// Groups `candidates` by base: `since` (`--since`) for every one when given, else each one's
/// own base from `bases` (the commits of their deployment records).
pub(crate) fn group_by_base<'a>(
    candidates: &'a BTreeSet<String>,
    since: Option<&'a str>,
    bases: &'a BTreeMap<String, String>,
) -> Groups<'a> {
    let mut groups = Groups {
        by_base: BTreeMap::new(),
        no_base: Vec::new(),
    };
    for c in candidates {
        match since.or(bases.get(c).map(String::as_str)) {
            Some(base) => groups.by_base.entry(base).or_default().push(c),
            None => groups.no_base.push(c),
        }
    }
    groups
}
