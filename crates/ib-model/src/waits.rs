//! Why each pod waits, and what wakes it when a NAD changes.
//!
//! Invariants: `nad_users` and `pod_nads` are each other's inverse, so a NAD change wakes exactly the
//! pods whose unconfigured interfaces use it; a pod's reason raises an Event only when it changes.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::annotation::NetworkRef;
use crate::pending::{Pending, PendingReason};
use crate::pod::{PodRef, PodUid};

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Waits {
    pending: HashMap<PodUid, PendingReason>,
    /// Pods whose unconfigured interfaces use a NAD, so that a NAD change wakes exactly them.
    nad_users: HashMap<NetworkRef, HashSet<PodUid>>,
    pod_nads: HashMap<PodUid, Vec<NetworkRef>>,
    /// Configured pods already told that they keep a partition their NAD no longer names.
    told_kept: HashSet<(PodUid, NetworkRef)>,
}

impl Waits {
    pub(crate) fn reason(&self, uid: &PodUid) -> Option<&PendingReason> {
        self.pending.get(uid)
    }

    /// Pods waiting, counted by reason label.
    pub(crate) fn by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for reason in self.pending.values() {
            *counts.entry(reason.label()).or_insert(0) += 1;
        }
        counts
    }

    /// Records why a pod waits. An Event (pushed to `events` when the pod is known as `pod`) is raised
    /// only when the reason changes: a failure that comes back on every retry with a different detail
    /// is still the same reason.
    pub(crate) fn set(&mut self, uid: &PodUid, pod: Option<PodRef>, reason: PendingReason, events: &mut Vec<Pending>) {
        if self.pending.get(uid).is_some_and(|old| old.same_as(&reason)) {
            return;
        }
        if let Some(pod) = pod {
            events.push(Pending { pod, reason: reason.clone() });
        }
        self.pending.insert(uid.clone(), reason);
    }

    pub(crate) fn clear(&mut self, uid: &PodUid) {
        self.pending.remove(uid);
    }

    /// A new leadership decides every reason again.
    pub(crate) fn clear_all(&mut self) {
        self.pending.clear();
    }

    /// The pods whose unconfigured interfaces use `network`.
    pub(crate) fn users_of(&self, network: &NetworkRef) -> impl Iterator<Item = &PodUid> {
        self.nad_users.get(network).into_iter().flatten()
    }

    /// Replaces the NADs a pod's unconfigured interfaces use.
    pub(crate) fn set_nads(&mut self, uid: &PodUid, mut nads: Vec<NetworkRef>) {
        nads.sort();
        nads.dedup();
        for old in self.pod_nads.remove(uid).unwrap_or_default() {
            if let Some(users) = self.nad_users.get_mut(&old) {
                users.remove(uid);
                if users.is_empty() {
                    self.nad_users.remove(&old);
                }
            }
        }
        if nads.is_empty() {
            return;
        }
        for n in &nads {
            self.nad_users.entry(n.clone()).or_default().insert(uid.clone());
        }
        self.pod_nads.insert(uid.clone(), nads);
    }

    /// Whether the pod is to be told (now, once) that it keeps a partition its NAD no longer names.
    pub(crate) fn tell_kept(&mut self, uid: &PodUid, network: &NetworkRef) -> bool {
        self.told_kept.insert((uid.clone(), network.clone()))
    }

    /// A pod that is gone: it waits for nothing and is told nothing more.
    pub(crate) fn forget(&mut self, uid: &PodUid) {
        self.set_nads(uid, Vec::new());
        if !self.told_kept.is_empty() {
            self.told_kept.retain(|(p, _)| p != uid);
        }
        self.clear(uid);
    }
}
