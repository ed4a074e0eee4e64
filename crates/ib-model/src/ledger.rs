//! The ownership ledger: which interface owns which GUID, and which partition it must be a member of.

use std::collections::HashMap;
use std::sync::Arc;

use crate::guid::Guid;
use crate::pkey::PKey;
use crate::pod::{InterfaceKey, PodUid};

/// One GUID's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The interface that owns the GUID.
    pub owner: InterfaceKey,
    /// The partition the GUID must be a member of (`None`: GUID-only network). Recorded when the claim
    /// is made, so the GUID can be removed even after its NAD changed or disappeared.
    pub pkey: Option<PKey>,
    /// The node of the owning pod when the claim was made, for the per-node pkey limit.
    pub node: Option<Arc<str>>,
    /// The pod was (or may have been) marked configured with this GUID: its record was read at leader
    /// start, or its annotation was seen configured with it. Such claims last until the pod is gone or
    /// finished, whatever happens to the annotation, because the VF may carry the GUID.
    pub configured: bool,
}

/// GUID ↔ owner, both ways. Numeric GUIDs everywhere, so spelling never matters: the Go daemon kept GUIDs
/// as the text a user wrote, and never released one written in upper case or with `-` (its bug B4,
/// docs/architecture.md).
///
/// Each claim is boxed: a hash table has as many empty slots as a quarter to a whole of its full ones,
/// and an empty slot then costs a pointer instead of a whole claim. The way back goes through the pod
/// (a pod has a handful of interfaces at most, most have one, and its vector is sized to them), not
/// through a second map keyed by the whole owner: that would hold every owner again.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    by_guid: HashMap<Guid, Box<Claim>>,
    by_pod: HashMap<PodUid, Vec<Guid>>,
}

impl Ledger {
    /// The claim on `guid`, if any.
    pub fn get(&self, guid: Guid) -> Option<&Claim> {
        self.by_guid.get(&guid).map(|c| &**c)
    }

    /// The claim on `guid`, to change in place.
    pub fn get_mut(&mut self, guid: Guid) -> Option<&mut Claim> {
        self.by_guid.get_mut(&guid).map(|c| &mut **c)
    }

    /// The GUID `owner` owns, if any.
    pub fn guid_of(&self, owner: &InterfaceKey) -> Option<Guid> {
        let guids = self.by_pod.get(&owner.pod)?;
        guids.iter().copied().find(|g| self.by_guid.get(g).is_some_and(|c| &c.owner == owner))
    }

    /// Whether the pod owns any GUID.
    pub fn owns_any(&self, pod: &PodUid) -> bool {
        self.by_pod.contains_key(pod)
    }

    /// Whether `guid` is claimed.
    pub fn contains(&self, guid: Guid) -> bool {
        self.by_guid.contains_key(&guid)
    }

    /// How many GUIDs are claimed.
    pub fn len(&self) -> usize {
        self.by_guid.len()
    }

    /// Whether no GUID is claimed.
    pub fn is_empty(&self) -> bool {
        self.by_guid.is_empty()
    }

    /// Records a claim. The caller has checked the GUID is unclaimed and the owner owns nothing else.
    pub fn insert(&mut self, guid: Guid, claim: Claim) {
        debug_assert!(!self.by_guid.contains_key(&guid), "{guid} claimed twice");
        debug_assert!(self.guid_of(&claim.owner).is_none(), "{} owns two GUIDs", claim.owner);
        let guids = self.by_pod.entry(claim.owner.pod.clone()).or_default();
        // One more slot, not a doubling: most pods keep the one or eight GUIDs they were given.
        guids.reserve_exact(1);
        guids.push(guid);
        self.by_guid.insert(guid, Box::new(claim));
    }

    /// Drops the claim on `guid`, returning it.
    pub fn remove(&mut self, guid: Guid) -> Option<Claim> {
        let claim = self.by_guid.remove(&guid)?;
        if let Some(guids) = self.by_pod.get_mut(&claim.owner.pod) {
            guids.retain(|g| *g != guid);
            if guids.is_empty() {
                self.by_pod.remove(&claim.owner.pod);
            } else {
                guids.shrink_to_fit();
            }
        }
        Some(*claim)
    }

    /// The uid of `pod` as the ledger holds it, shared with its claims, if it owns any GUID.
    pub fn shared_pod(&self, pod: &PodUid) -> Option<&PodUid> {
        self.by_pod.get_key_value(pod).map(|(k, _)| k)
    }

    /// Every GUID owned by one pod, in the order of its interfaces (network, then interface name).
    pub fn guids_of_pod(&self, pod: &PodUid) -> Vec<Guid> {
        let mut guids = self.by_pod.get(pod).cloned().unwrap_or_default();
        let owner = |g: &Guid| self.by_guid.get(g).map(|c| &c.owner);
        guids.sort_by(|a, b| owner(a).cmp(&owner(b)));
        guids
    }

    /// Every claim, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Guid, &Claim)> {
        self.by_guid.iter().map(|(g, c)| (*g, &**c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::NetworkRef;

    fn claim(pod: &str, interface: &str) -> Claim {
        let owner = InterfaceKey { pod: pod.into(), network: NetworkRef::new("ns", "ib"), interface: interface.into() };
        Claim { owner, pkey: None, node: None, configured: false }
    }

    #[test]
    fn claims_are_found_both_ways_and_each_pod_keeps_only_the_room_it_needs() {
        let g = Guid::from_u64;
        let mut ledger = Ledger::default();
        for (guid, interface) in [(3, "net3"), (1, "net1"), (2, "net2")] {
            ledger.insert(g(guid), claim("a", interface));
        }
        ledger.insert(g(9), claim("b", "net1"));
        assert_eq!((ledger.len(), ledger.iter().count()), (4, 4));
        assert_eq!(ledger.get(g(3)).map(|c| &*c.owner.interface), Some("net3"));
        assert_eq!(ledger.guid_of(&claim("b", "net1").owner), Some(g(9)));
        assert_eq!(ledger.guid_of(&claim("b", "net2").owner), None);
        assert_eq!(ledger.guids_of_pod(&"a".into()), vec![g(1), g(2), g(3)], "in the order of the interfaces");
        let room = |l: &Ledger, pod: &str| l.by_pod.get(&PodUid::from(pod)).map_or(0, Vec::capacity);
        assert_eq!((room(&ledger, "a"), room(&ledger, "b")), (3, 1));

        if let Some(c) = ledger.get_mut(g(2)) {
            c.configured = true;
        }
        assert!(ledger.get(g(2)).is_some_and(|c| c.configured));
        assert_eq!(ledger.remove(g(2)).map(|c| c.owner.interface), Some("net2".into()));
        assert_eq!(ledger.remove(g(2)), None);
        assert_eq!((ledger.get(g(2)), ledger.contains(g(2)), room(&ledger, "a")), (None, false, 2));
        ledger.remove(g(9));
        assert!(!ledger.owns_any(&"b".into()) && ledger.owns_any(&"a".into()));
        assert_eq!(ledger.len(), 2);
    }
}
