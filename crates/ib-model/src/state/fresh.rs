//! A new leader's fresh pod list, taken in page by page as it is read instead of gathered whole.
//!
//! The outcome is exactly that of [`State::refresh_pods`] with the whole list: each listed pod is applied
//! as the watch would apply it (an older view never replaces a newer one), and once the list has ended,
//! a known pod the list did not contain is gone unless what is known of it is newer than the list. Until
//! the end nothing is decided: the pods are not read for this leadership before it.
//!
//! What is kept between pages is the uid of every listed pod (shared with the views the state keeps), a
//! few bytes each, instead of every view of the list.

use std::collections::HashSet;

use super::State;
use crate::known::is_older;
use crate::pod::{PodUid, PodView};

/// The pods the fresh list in progress has delivered so far.
#[derive(Debug, Default)]
pub(crate) struct FreshList {
    listed: HashSet<PodUid>,
}

impl State {
    /// One page of a fresh list (a new leader's consistent, paged read of every pod, made while the watch
    /// keeps running). Its pods are applied at once; which pods are gone is decided only at
    /// [`fresh_pods_end`](Self::fresh_pods_end).
    pub fn fresh_pods_page<I: IntoIterator<Item = PodView>>(&mut self, views: I) {
        for view in views {
            let uid = view.uid.clone();
            self.apply_pod(view);
            let uid = self.listed_uid(uid);
            self.fresh.listed.insert(uid);
        }
    }

    /// The fresh list has ended at `list_rv` (its resourceVersion): a pod no page contained is gone only
    /// if what is known of it is not newer than the list, since the watch may already have delivered a pod
    /// created after the list's snapshot. The pods are then read for this leadership
    /// ([`pods_synced`](Self::pods_synced)).
    pub fn fresh_pods_end(&mut self, list_rv: Option<&str>) {
        let listed = std::mem::take(&mut self.fresh.listed);
        let gone: Vec<PodUid> = self
            .known
            .pod_uids()
            .filter(|uid| !listed.contains(*uid))
            .filter(|uid| {
                let newer = |rv: &str| self.known.pod(uid).is_some_and(|known| is_older(rv, &known.resource_version));
                !list_rv.is_some_and(newer)
            })
            .cloned()
            .collect();
        drop(listed);
        for uid in gone {
            self.delete_pod(&uid);
        }
        self.pods_synced();
    }

    /// The fresh list failed before its end: what its pages delivered stays applied (each view as the
    /// watch would apply it), but they name no pod gone; the list is read again whole.
    pub fn fresh_pods_failed(&mut self) {
        self.fresh = FreshList::default();
    }
}
