//! The one-time import of configured annotations on the first start, and its anchor write.

use super::*;
use crate::annotation::network_status::reported_guid;

impl Planner<'_> {
    /// The first start without any records (coming from the Go daemon or an earlier version): the
    /// configured elements of live pods are taken as owned, once, oldest pod first, and recorded. The
    /// anchor block is written even when nothing is imported, so that no later start imports again.
    ///
    /// An element that lost its `cni-args` (KubeVirt's virt-handler removes them from a running
    /// virt-launcher pod), and with them its GUID and marker, is imported with the GUID the pod's
    /// network-status annotation reports for its interface, under the same rules: oldest pod first, no
    /// owner displaced, and only with the membership as evidence.
    pub(crate) fn import_from_annotations(&mut self) -> Imported {
        let mut imported = Imported::default();
        for uid in self.known.pods_by_age() {
            let Some(view) = self.known.pod(&uid).filter(|v| !v.is_finished() && !v.host_network) else { continue };
            let Some(Ok(annotation)) =
                self.known.networks(&uid).map(|raw| NetworksAnnotation::parse(&raw, &view.namespace))
            else {
                continue;
            };
            let namespace = view.namespace.clone();
            let status = view.network_status.clone();
            for s in annotation.selections() {
                let written = s.guid.as_ref().map(|(t, _)| Guid::parse(t));
                let guid = match (s.configured, written) {
                    (true, Some(Ok(g))) => g,
                    (true, _) => continue,
                    // Not marked: only a GUID Multus reported for the interface, and one the element
                    // does not contradict.
                    (false, written) => match reported_guid(&status, s) {
                        Some(g) if written.is_none_or(|w| w == Ok(g)) => g,
                        _ => continue,
                    },
                };
                if !self.owners.range().contains(guid) {
                    continue;
                }
                let key = InterfaceKey {
                    pod: uid.clone(),
                    network: s.network.clone(),
                    interface: s.interface.as_str().into(),
                };
                if let Some(owner) = self.owners.ledger().get(guid).map(|c| c.owner.pod.clone()) {
                    imported.duplicates += 1;
                    let reason = PendingReason::DuplicateGuid {
                        network: key.network,
                        interface: key.interface.to_string(),
                        guid,
                        owner: self.known.describe_owner(&owner, &namespace),
                    };
                    self.set_pending(&uid, reason);
                    continue;
                }
                let nad = self.known.nad(&key.network);
                let nad_pkey = self.known.nad_pkey(&key.network);
                let written = match s.pkey.as_deref() {
                    Some(p) => PKey::parse(p).ok(),
                    // Releases before the partition was recorded in cni-args wrote only the marker; their
                    // pods are in their NAD's partition.
                    None => nad_pkey,
                };
                // Anyone who can edit a pod could have written the marker: it is imported only with
                // evidence, the membership it names in the subnet manager, or, for a GUID-only network
                // (which the subnet manager knows nothing of), an existing GUID-only NAD. Without it the
                // marker is a request like any other once the import is final.
                let evidence = match written {
                    Some(p) => self.owners.sm().has(guid, p),
                    None => matches!(nad, Some(Ok(NadKind::InfiniBand(spec))) if spec.pkey.is_none()),
                };
                if !evidence {
                    continue;
                }
                let pkey = written;
                imported.interfaces += 1;
                self.claim(guid, key, pkey, true);
            }
            self.dirty.pods.insert(uid);
        }
        imported
    }

    /// The anchor block's write, which makes the import final: sent at once, and again after each
    /// failure once the caller's backoff is over. Nothing else is decided meanwhile. Whether it was
    /// sent (not while an earlier one is in flight).
    pub(crate) fn send_anchor(&mut self) -> bool {
        let anchor = BlockId::of(self.owners.range().start());
        if self.records.writes_to(anchor) != 0 {
            return false;
        }
        let write = RecordWrite { block: anchor, changes: BTreeMap::new() };
        self.records.sent(&write);
        self.out.records.push(write);
        true
    }
}
