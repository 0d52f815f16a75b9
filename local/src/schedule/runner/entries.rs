//! The runner's schedules ([`Entries`]): the template's, then those added at run time, kept in
//! that order and indexed by (group, name), so that adding, removing or finding one schedule
//! does not scan them all: the Scheduler API may hold many thousands of one-time schedules,
//! each removed again once it fired (`ActionAfterCompletion: DELETE`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::Entry;

/// The schedules in the order they came, with an index by (group, name).
#[derive(Default)]
pub(super) struct Entries {
    by_order: BTreeMap<u64, Arc<Entry>>,
    /// A template may name two schedules alike (a legacy rule and a Scheduler schedule), so
    /// one name may have several places; the earliest is the one a name stands for.
    by_name: HashMap<(String, String), BTreeSet<u64>>,
    next: u64,
}

impl Entries {
    /// The entries of `list`, in its order.
    pub(super) fn from_list(list: Vec<Arc<Entry>>) -> Self {
        let mut entries = Entries::default();
        for entry in list {
            entries.push(entry);
        }
        entries
    }

    /// Every entry, in the order they came.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.by_order.values()
    }

    /// The entry `name` of `group` (the earliest when there are several).
    pub(super) fn get(&self, group: &str, name: &str) -> Option<&Arc<Entry>> {
        let places = self.by_name.get(&(group.to_owned(), name.to_owned()))?;
        self.by_order.get(places.first()?)
    }

    /// Adds `entry` after the others.
    pub(super) fn push(&mut self, entry: Arc<Entry>) {
        let place = self.next;
        self.next += 1;
        self.by_name
            .entry((entry.group.clone(), entry.def.name.clone()))
            .or_default()
            .insert(place);
        self.by_order.insert(place, entry);
    }

    /// Removes the entry `name` of `group` (the earliest when there are several).
    pub(super) fn remove(&mut self, group: &str, name: &str) -> Option<Arc<Entry>> {
        let key = (group.to_owned(), name.to_owned());
        let places = self.by_name.get_mut(&key)?;
        let place = places.pop_first()?;
        if places.is_empty() {
            self.by_name.remove(&key);
        }
        self.by_order.remove(&place)
    }
}
