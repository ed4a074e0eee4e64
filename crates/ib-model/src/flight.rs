//! What is in flight outside the ownership of GUIDs: pod patches, and the subnet manager's listing with
//! the counter that orders its answer against the outcomes of membership changes.
//!
//! Invariants: at most one patch per pod is in flight, and a pod whose patch failed is not planned
//! again until the caller retries it; a listing tells nothing about a GUID changed after it was asked
//! for.

use std::collections::{HashMap, HashSet};

use crate::guid::Guid;
use crate::pod::PodUid;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// Pods with a patch in flight, and the resourceVersion it was planned from.
    patches: HashMap<PodUid, String>,
    /// Pods whose patch failed or conflicted, until the caller retries them.
    patch_failed: HashSet<PodUid>,
    /// A listing is to be asked for at the next plan.
    list_wanted: bool,
    /// The completion counter when the listing in flight was asked for.
    listing: Option<u64>,
    /// Completion counter: orders subnet-manager outcomes against listings.
    seq: u64,
    /// Per GUID, the counter of its last completed change: a listing asked for before that change
    /// cannot tell anything about the GUID.
    last_touch: HashMap<Guid, u64>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            patches: HashMap::new(),
            patch_failed: HashSet::new(),
            // Nothing is decided before the subnet manager has been read.
            list_wanted: true,
            listing: None,
            seq: 0,
            last_touch: HashMap::new(),
        }
    }
}

impl InFlight {
    /// A new leadership: what is in flight belongs to nobody, and the subnet manager is read again.
    pub(crate) fn new_leadership(&mut self) {
        self.patches.clear();
        self.patch_failed.clear();
        self.listing = None;
        self.list_wanted = true;
    }

    /// Nothing is in flight or wanted.
    pub(crate) fn is_idle(&self) -> bool {
        self.patches.is_empty() && self.listing.is_none() && !self.list_wanted
    }

    // === patches ===

    pub(crate) fn patch_sent(&mut self, uid: &PodUid, resource_version: &str) {
        self.patches.insert(uid.clone(), resource_version.to_owned());
    }

    pub(crate) fn patching(&self, uid: &PodUid) -> bool {
        self.patches.contains_key(uid)
    }

    /// A patch ended; `failed` whether it must wait for the caller's retry.
    pub(crate) fn patch_ended(&mut self, uid: &PodUid, failed: bool) {
        self.patches.remove(uid);
        if failed {
            self.patch_failed.insert(uid.clone());
        } else {
            self.patch_failed.remove(uid);
        }
    }

    /// A patch ended without an answer worth keeping (the pod is gone).
    pub(crate) fn patch_dropped(&mut self, uid: &PodUid) {
        self.patches.remove(uid);
    }

    pub(crate) fn patch_failed(&self, uid: &PodUid) -> bool {
        self.patch_failed.contains(uid)
    }

    /// Lets a pod whose patch failed be planned again; whether it had failed.
    pub(crate) fn retry_patch(&mut self, uid: &PodUid) -> bool {
        self.patch_failed.remove(uid)
    }

    /// A pod that is gone: its failed patch is not retried.
    pub(crate) fn forget_pod(&mut self, uid: &PodUid) {
        self.patch_failed.remove(uid);
    }

    // === the listing ===

    pub(crate) fn want_listing(&mut self) {
        self.list_wanted = true;
    }

    /// Starts the wanted listing unless one is in flight; whether it did.
    pub(crate) fn start_listing(&mut self) -> bool {
        if self.list_wanted && self.listing.is_none() {
            self.list_wanted = false;
            self.listing = Some(self.seq);
            return true;
        }
        false
    }

    pub(crate) fn listing_failed(&mut self) {
        self.listing = None;
    }

    /// The listing arrived: the counter when it was asked for.
    pub(crate) fn listing_done(&mut self) -> u64 {
        self.listing.take().unwrap_or(self.seq)
    }

    /// A subnet-manager request ended: the next tick of the counter.
    pub(crate) fn tick(&mut self) {
        self.seq += 1;
    }

    /// A change of `g` completed now.
    pub(crate) fn touch(&mut self, g: Guid) {
        self.last_touch.insert(g, self.seq);
    }

    /// Whether `g` changed after a listing asked for at `asked_at`.
    pub(crate) fn changed_since(&self, g: Guid, asked_at: u64) -> bool {
        self.last_touch.get(&g).is_some_and(|s| *s > asked_at)
    }

    /// Forgets changes that a listing asked for at `asked_at` has seen.
    pub(crate) fn seen_by(&mut self, asked_at: u64) {
        self.last_touch.retain(|_, s| *s > asked_at);
    }
}
