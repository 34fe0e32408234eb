//! What a `metrics_util` debugging recorder was given: each series as name, labels and value, and lookups by exact
//! labels. The recorder hands out what changed since its previous snapshot (counters count from zero again), so
//! a test takes one snapshot per checkpoint.

use metrics_util::debugging::{DebugValue, Snapshotter};

/// A reported series: name, labels, value.
pub type Series = (String, Vec<(String, String)>, DebugValue);

/// Every series reported since the previous snapshot.
pub fn series(snapshotter: &Snapshotter) -> Vec<Series> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
            (key.name().to_owned(), labels, value)
        })
        .collect()
}

/// The value of the series `name` with exactly `labels` (in any order).
pub fn find<'a>(all: &'a [Series], name: &str, labels: &[(&str, &str)]) -> &'a DebugValue {
    all.iter()
        .find(|(n, l, _)| {
            n == name && l.len() == labels.len() && labels.iter().all(|(k, v)| l.contains(&((*k).into(), (*v).into())))
        })
        .map(|(_, _, v)| v)
        .unwrap_or_else(|| panic!("series {name} {labels:?} not reported; got {all:#?}"))
}
