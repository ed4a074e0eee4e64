//! Pods seen deleted, remembered for as long as a view of them read earlier may still arrive.
//!
//! A fresh list, a patch's answer or a re-read after a conflict can be read before a pod's deletion and
//! reach the state task after the watch delivered that deletion. Applied, such a view would bring the
//! pod back, and since its deletion is not delivered again it would keep its GUIDs in their partitions
//! until the next re-list. A pod's uid is never reused, so any view of a deleted uid is stale.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use ib_model::PodUid;

pub(super) struct Deleted {
    /// How long a deletion is remembered: longer than any read that may have started before it.
    keep: Duration,
    order: VecDeque<(Instant, PodUid)>,
    uids: HashSet<PodUid>,
}

impl Deleted {
    pub(super) fn new(keep: Duration) -> Self {
        Deleted { keep, order: VecDeque::new(), uids: HashSet::new() }
    }

    pub(super) fn insert(&mut self, uid: PodUid) {
        let now = Instant::now();
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < self.keep {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.uids.remove(&old);
            }
        }
        if self.uids.insert(uid.clone()) {
            self.order.push_back((now, uid));
        }
    }

    pub(super) fn contains(&self, uid: &PodUid) -> bool {
        self.uids.contains(uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletions_are_forgotten_after_their_time() {
        let mut deleted = Deleted::new(Duration::ZERO);
        deleted.insert(PodUid::from("a"));
        assert!(deleted.contains(&PodUid::from("a")));
        // Inserting prunes what is older than `keep`.
        deleted.insert(PodUid::from("b"));
        assert!(!deleted.contains(&PodUid::from("a")) && deleted.contains(&PodUid::from("b")));
        let mut deleted = Deleted::new(Duration::from_secs(3600));
        deleted.insert(PodUid::from("a"));
        deleted.insert(PodUid::from("b"));
        assert!(deleted.contains(&PodUid::from("a")) && deleted.contains(&PodUid::from("b")));
    }
}
