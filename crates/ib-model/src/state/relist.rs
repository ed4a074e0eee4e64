//! The pod watch's own list (its first one, and each re-list after a gap in the stream), taken in page
//! by page as the watch delivers it instead of gathered whole: at 100,000 pods the gathered list was
//! every view at once beside the state, the largest thing a start held.
//!
//! The outcome is that of [`State::reset_pods`] with the whole list: every listed pod is applied, and at
//! the end every known pod the list did not contain is gone. A listed view older than the one known is
//! not applied (the watch may list from a cache that lags a view read since), as the watch's own events
//! are not. What is kept between pages is the uid of every listed pod, not its view.

use std::collections::HashSet;

use super::State;
use crate::pod::{PodUid, PodView};

/// The pods the watch's list in progress has delivered so far.
#[derive(Debug, Default)]
pub(crate) struct Relist {
    listed: HashSet<PodUid>,
}

impl State {
    /// One page of the pod watch's list; `first`: a new list begins with it, and whatever an earlier,
    /// unfinished list delivered no longer counts toward which pods are gone. The page's pods are
    /// applied at once; which pods are gone is decided at [`relist_pods_end`](Self::relist_pods_end).
    pub fn relist_pods_page<I: IntoIterator<Item = PodView>>(&mut self, first: bool, views: I) {
        if first {
            self.relist = Relist::default();
        }
        for view in views {
            let uid = view.uid.clone();
            self.apply_pod(view);
            let uid = self.listed_uid(uid);
            self.relist.listed.insert(uid);
        }
    }

    /// The pod watch's list has ended: a known pod no page of it contained is gone, and the pods are
    /// read ([`pods_synced`](Self::pods_synced)). How many pods the list held.
    pub fn relist_pods_end(&mut self) -> usize {
        let listed = std::mem::take(&mut self.relist.listed);
        let gone: Vec<PodUid> = self.known.pod_uids().filter(|uid| !listed.contains(*uid)).cloned().collect();
        for uid in gone {
            self.delete_pod(&uid);
        }
        self.pods_synced();
        listed.len()
    }
}
