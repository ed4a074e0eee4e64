//! What is known of the cluster's pods and NetworkAttachmentDefinitions, as the watches deliver them.
//!
//! Invariant: a kept pod's view is never replaced by an older one, and a pod that cannot be configured
//! now keeps only the presence of its annotation; an annotation with GUIDs in it is kept as its
//! [shape](crate::shape) and read back exactly ([`Known::networks`]). Each change reports what it
//! changed, so the caller plans exactly those pods.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::annotation::NetworkRef;
use crate::nad::{self, NadError, NadKind};
use crate::names::Names;
use crate::pkey::PKey;
use crate::pod::{PodUid, PodView};
use crate::shape::Shaped;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Boxed: the table has a quarter to a half of its slots empty, and an empty slot costs only a
    /// pointer.
    pods: HashMap<PodUid, Box<Kept>>,
    nads: HashMap<NetworkRef, Result<NadKind, NadError>>,
    /// The partition allocated to each network that asked for one, as the allocator's ledger says: the
    /// only source of an allocated partition (a NAD's own text may be written by anyone).
    allocated: HashMap<NetworkRef, PKey>,
}

/// Whether resourceVersion `a` is older than `b` (both decimal, as API servers issue them).
pub(crate) fn is_older(a: &str, b: &str) -> bool {
    matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if a < b)
}

impl Known {
    /// What is kept of a pod, but its networks annotation: read that with [`networks`](Self::networks).
    pub(crate) fn pod(&self, uid: &PodUid) -> Option<&PodView> {
        self.pods.get(uid).map(|k| &k.view)
    }

    /// A kept pod's networks annotation, as it was delivered.
    pub(crate) fn networks(&self, uid: &PodUid) -> Option<Cow<'_, str>> {
        self.pods.get(uid).and_then(|k| k.networks())
    }

    /// A kept pod's view, whole.
    pub(crate) fn whole_pod(&self, uid: &PodUid) -> Option<PodView> {
        self.pods.get(uid).map(|k| k.whole())
    }

    /// The uid as the table holds it, shared with the kept view, for a caller that keeps it too.
    pub(crate) fn shared_uid(&self, uid: &PodUid) -> Option<&PodUid> {
        self.pods.get_key_value(uid).map(|(k, _)| k)
    }

    pub(crate) fn pod_uids(&self) -> impl Iterator<Item = &PodUid> {
        self.pods.keys()
    }

    #[cfg(test)]
    pub(crate) fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Every pod kept, oldest first (for the one-time import).
    pub(crate) fn pods_by_age(&self) -> Vec<PodUid> {
        let mut pods: Vec<(i64, &PodUid)> = self.pods.values().map(|k| (k.view.created, &k.view.uid)).collect();
        pods.sort();
        pods.into_iter().map(|(_, uid)| uid.clone()).collect()
    }

    pub(crate) fn nad(&self, network: &NetworkRef) -> Option<&Result<NadKind, NadError>> {
        self.nads.get(network)
    }

    /// The partition of an InfiniBand NAD, when it is known and has one.
    pub(crate) fn nad_pkey(&self, network: &NetworkRef) -> Option<PKey> {
        match self.nads.get(network) {
            Some(Ok(NadKind::InfiniBand(spec))) if spec.options.allocate_pkey => self.allocated_pkey(network),
            Some(Ok(NadKind::InfiniBand(spec))) => spec.pkey,
            _ => None,
        }
    }

    /// The partition allocated to `network`, if any.
    pub(crate) fn allocated_pkey(&self, network: &NetworkRef) -> Option<PKey> {
        self.allocated.get(network).copied()
    }

    /// The network `pkey` is allocated to, if any.
    pub(crate) fn allocated_to(&self, pkey: PKey) -> Option<&NetworkRef> {
        self.allocated.iter().find(|(_, p)| **p == pkey).map(|(n, _)| n)
    }

    /// Replaces the allocations; the networks whose allocation changed.
    pub(crate) fn set_allocations(&mut self, allocated: HashMap<NetworkRef, PKey>) -> Vec<NetworkRef> {
        let changed = self
            .allocated
            .keys()
            .chain(allocated.keys())
            .filter(|n| self.allocated.get(*n) != allocated.get(*n))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        self.allocated = allocated;
        changed
    }

    /// The owning pod's name, for a pod of `namespace`: named only within the same namespace.
    pub(crate) fn describe_owner(&self, owner: &PodUid, namespace: &str) -> Option<String> {
        let view = &self.pods.get(owner)?.view;
        (*view.namespace == *namespace).then(|| format!("{}/{}", view.namespace, view.name))
    }

    // === pods ===

    /// Most pods of a cluster have no networks annotation: they need nothing and own nothing, so they are
    /// not kept (at 100,000 pods that is half the controller's memory). One already kept stays until it
    /// is gone: its annotation was removed, and what it owned is released by planning it.
    ///
    /// A pod that owns GUIDs by record (`owns`) is kept whatever its annotation says: its VFs may carry
    /// them. So that it is known before the pods are read, a leader reads the records first.
    fn worth_keeping(&self, view: &PodView, owns: impl Fn(&PodUid) -> bool) -> bool {
        view.networks.is_some() || self.pods.contains_key(&view.uid) || owns(&view.uid)
    }

    /// Keeps a pod's view; whether anything changed.
    pub(crate) fn apply_pod(&mut self, view: PodView, owns: impl Fn(&PodUid) -> bool, names: &mut Names) -> bool {
        if !self.worth_keeping(&view, owns) {
            return false;
        }
        let kept = Kept::new(view, names);
        match self.pods.get(&kept.view.uid) {
            Some(current) if *current == kept => return false,
            // A lagging watch can deliver a version older than one already read (by a fresh list or a
            // patch response). resourceVersions are opaque, but every API server issues them as
            // increasing integers; when both parse, the older view is ignored.
            Some(current) if is_older(&kept.view.resource_version, &current.view.resource_version) => return false,
            _ => {}
        }
        self.pods.insert(kept.view.uid.clone(), kept);
        true
    }

    /// Forgets a pod; whether it was kept.
    pub(crate) fn delete_pod(&mut self, uid: &PodUid) -> bool {
        self.pods.remove(uid).is_some()
    }

    /// Replaces every pod (a re-list); pods not in `views` are gone. The pods that changed.
    pub(crate) fn reset_pods<I: IntoIterator<Item = PodView>>(
        &mut self,
        views: I,
        owns: impl Fn(&PodUid) -> bool,
        names: &mut Names,
    ) -> Vec<PodUid> {
        let mut fresh: HashMap<PodUid, Box<Kept>> = views
            .into_iter()
            .filter(|v| self.worth_keeping(v, &owns))
            .map(|v| (v.uid.clone(), Kept::new(v, names)))
            .collect();
        let mut changed = Vec::new();
        for (uid, old) in &self.pods {
            if fresh.get(uid) != Some(old) {
                changed.push(uid.clone());
            }
        }
        for uid in fresh.keys() {
            if !self.pods.contains_key(uid) {
                changed.push(uid.clone());
            }
        }
        std::mem::swap(&mut self.pods, &mut fresh);
        changed
    }

    /// A consistent list read at `list_rv` while the watch keeps running (a new leader's fresh read).
    /// Unlike a watch's own re-list, a pod missing from it is gone only if what is known of it is not
    /// newer than the list: the watch may already have delivered a pod created after the list's
    /// snapshot, and dropping that pod would lose it until it changes again. Newer known versions of
    /// listed pods are kept too ([`apply_pod`](Self::apply_pod) ignores older ones). The pods that
    /// changed.
    pub(crate) fn refresh_pods<I: IntoIterator<Item = PodView>>(
        &mut self,
        views: I,
        list_rv: Option<&str>,
        owns: impl Fn(&PodUid) -> bool,
        names: &mut Names,
    ) -> Vec<PodUid> {
        let fresh: HashMap<PodUid, PodView> =
            views.into_iter().filter(|v| self.worth_keeping(v, &owns)).map(|v| (v.uid.clone(), v)).collect();
        let gone: Vec<PodUid> = self
            .pods
            .iter()
            .filter(|(uid, known)| {
                !fresh.contains_key(*uid) && !list_rv.is_some_and(|rv| is_older(rv, &known.view.resource_version))
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut changed = Vec::new();
        for uid in gone {
            if self.delete_pod(&uid) {
                changed.push(uid);
            }
        }
        for view in fresh.into_values() {
            let uid = view.uid.clone();
            if self.apply_pod(view, &owns, names) {
                changed.push(uid);
            }
        }
        changed
    }

    // === NADs ===

    /// Records a NAD from its `spec.config`; whether it changed.
    pub(crate) fn apply_nad(&mut self, network: NetworkRef, config: Option<&str>) -> bool {
        let kind = nad::classify(config);
        if self.nads.get(&network) == Some(&kind) {
            return false;
        }
        self.nads.insert(network, kind);
        true
    }

    /// Forgets a NAD; whether it was known.
    pub(crate) fn delete_nad(&mut self, network: &NetworkRef) -> bool {
        self.nads.remove(network).is_some()
    }

    /// Replaces every NAD (a re-list). The NADs that changed.
    pub(crate) fn reset_nads<'a, I: IntoIterator<Item = (NetworkRef, Option<&'a str>)>>(
        &mut self,
        nads: I,
    ) -> Vec<NetworkRef> {
        let fresh: HashMap<NetworkRef, Result<NadKind, NadError>> =
            nads.into_iter().map(|(n, c)| (n, nad::classify(c))).collect();
        let changed: Vec<NetworkRef> =
            self.nads.keys().chain(fresh.keys()).filter(|n| self.nads.get(*n) != fresh.get(*n)).cloned().collect();
        self.nads = fresh;
        changed
    }
}

/// A pod as kept: its view, and its networks annotation in the view or, when it has a
/// [shape](crate::shape), as that (the view then holds an empty annotation).
#[derive(Debug, PartialEq)]
struct Kept {
    view: PodView,
    shaped: Option<Shaped>,
}

impl Kept {
    fn new(view: PodView, names: &mut Names) -> Box<Self> {
        let mut view = names.view(compact(view));
        let shaped = view.networks.as_deref().and_then(|text| Shaped::of(text, names));
        if shaped.is_some() {
            view.networks = Some(String::new());
        }
        Box::new(Kept { view, shaped })
    }

    fn networks(&self) -> Option<Cow<'_, str>> {
        match &self.shaped {
            Some(shaped) => Some(Cow::Owned(shaped.text())),
            None => self.view.networks.as_deref().map(Cow::Borrowed),
        }
    }

    fn whole(&self) -> PodView {
        PodView { networks: self.networks().map(Cow::into_owned), ..self.view.clone() }
    }
}

/// Drops what a pod's view need not keep: the annotation of a pod that cannot be configured now (not
/// scheduled, or finished) is read again from the watch when that changes, so only its presence is kept.
/// A tenant's unscheduled pods with huge annotations then cost a few bytes each.
fn compact(mut view: PodView) -> PodView {
    let scheduled = view.node_name.as_deref().is_some_and(|n| !n.is_empty());
    if (!scheduled || view.is_finished())
        && let Some(n) = view.networks.as_mut()
    {
        n.clear();
        n.shrink_to_fit();
    }
    view
}
