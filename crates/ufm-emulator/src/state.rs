//! The emulated fabric's logical model: partitions, their members and the GUIDs the fabric
//! has discovered, with the semantics a client of UFM's REST API observes:
//! adding creates a partition, removing the last member deletes it, removing a non-member is a
//! no-op, and the management partition always exists.

use std::collections::{BTreeMap, BTreeSet};

use crate::wire::{
    Guid, GuidsRequest, MANAGEMENT_PKEY, Membership, PartitionRequest, PartitionView, Qos, RemoveRequest, format_pkey,
};

/// Why the fabric refused a change; each maps to a UFM status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("guids not found in the fabric: {}", join(.0))]
    UnseenGuids(Vec<Guid>),
    #[error("pkey {} not found", format_pkey(*.0))]
    UnknownPkey(u16),
}

fn join(guids: &[Guid]) -> String {
    guids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// One GUID's attributes inside one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub membership: Membership,
    pub index0: bool,
    pub ip_over_ib: bool,
}

impl Default for Member {
    /// What UFM assumes for a GUID added without attributes.
    fn default() -> Self {
        Member { membership: Membership::Full, index0: false, ip_over_ib: true }
    }
}

/// One partition as UFM stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub name: String,
    pub ip_over_ib: bool,
    /// Set only on the management partition: the membership every port gets by default.
    pub default_membership: Option<Membership>,
    pub qos: Qos,
    pub members: BTreeMap<Guid, Member>,
}

impl Partition {
    /// An empty partition with UFM's defaults: generated name, IPoIB on, default QoS.
    pub fn new(pkey: u16) -> Self {
        Partition {
            name: default_name(pkey),
            ip_over_ib: true,
            default_membership: None,
            qos: Qos::default(),
            members: BTreeMap::new(),
        }
    }

    /// The predefined management partition.
    pub fn management(default_membership: Option<Membership>) -> Self {
        Partition { name: "management".to_owned(), default_membership, ..Partition::new(MANAGEMENT_PKEY) }
    }

    pub(crate) fn view(&self) -> PartitionView<'_> {
        PartitionView {
            name: &self.name,
            ip_over_ib: self.ip_over_ib,
            default_membership: self.default_membership,
            qos: self.qos,
            members: self.members.iter().map(|(g, m)| (*g, m.membership, m.index0)).collect(),
        }
    }
}

/// The name UFM gives a partition created through the API without `partition_name`.
pub fn default_name(pkey: u16) -> String {
    format!("api_pkey_{}", format_pkey(pkey))
}

/// All partitions plus discovery state. Every change bumps `generation`, the emulator's
/// stand-in for UFM's `last_updated`.
#[derive(Debug, Clone)]
pub struct Fabric {
    partitions: BTreeMap<u16, Partition>,
    seen: BTreeSet<Guid>,
    reject_unseen: bool,
    management_membership: Option<Membership>,
    generation: u64,
}

impl Fabric {
    pub(crate) fn new(management_membership: Option<Membership>) -> Self {
        let mut fabric = Fabric {
            partitions: BTreeMap::new(),
            seen: BTreeSet::new(),
            reject_unseen: false,
            management_membership,
            generation: 0,
        };
        fabric.reset();
        fabric
    }

    /// Back to a fresh fabric: only the management partition, nothing discovered. The
    /// generation keeps counting so observers still see a change.
    pub(crate) fn reset(&mut self) {
        self.partitions.clear();
        self.partitions.insert(MANAGEMENT_PKEY, Partition::management(self.management_membership));
        self.seen.clear();
        self.generation += 1;
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn partitions(&self) -> &BTreeMap<u16, Partition> {
        &self.partitions
    }

    pub fn get(&self, pkey: u16) -> Option<&Partition> {
        self.partitions.get(&pkey)
    }

    /// Whether the fabric has discovered this GUID (declared through the control handle).
    pub fn is_seen(&self, guid: Guid) -> bool {
        self.seen.contains(&guid)
    }

    /// Whether adds of undiscovered GUIDs are refused.
    pub fn rejects_unseen(&self) -> bool {
        self.reject_unseen
    }

    pub(crate) fn set_reject_unseen(&mut self, on: bool) {
        self.reject_unseen = on;
    }

    pub(crate) fn mark_seen(&mut self, guids: impl IntoIterator<Item = Guid>) {
        self.seen.extend(guids);
    }

    fn check_seen<'a>(&self, guids: impl Iterator<Item = &'a Guid>) -> Result<(), StateError> {
        if !self.reject_unseen {
            return Ok(());
        }
        let unseen: Vec<Guid> = guids.filter(|g| !self.seen.contains(g)).copied().collect();
        if unseen.is_empty() { Ok(()) } else { Err(StateError::UnseenGuids(unseen)) }
    }

    fn entry(&mut self, pkey: u16, name: Option<&str>) -> &mut Partition {
        let partition = self.partitions.entry(pkey).or_insert_with(|| Partition::new(pkey));
        if let Some(name) = name {
            name.clone_into(&mut partition.name);
        }
        partition
    }

    /// E2: merges GUIDs into the partition, creating it if needed; re-adding a member
    /// overwrites its attributes.
    pub(crate) fn add(&mut self, req: &GuidsRequest) -> Result<(), StateError> {
        self.check_seen(req.members.iter().map(|(g, _)| g))?;
        let partition = self.entry(req.pkey, req.partition_name.as_deref());
        partition.ip_over_ib = req.ip_over_ib;
        req.qos.apply(&mut partition.qos);
        for (guid, membership) in &req.members {
            partition
                .members
                .insert(*guid, Member { membership: *membership, index0: req.index0, ip_over_ib: req.ip_over_ib });
        }
        self.generation += 1;
        Ok(())
    }

    /// E6: replaces the member list. UFM applies this as a diff, so members present before
    /// and after keep their entry; an empty list deletes the partition like a last removal.
    pub(crate) fn set(&mut self, req: &GuidsRequest) -> Result<(), StateError> {
        self.check_seen(req.members.iter().map(|(g, _)| g))?;
        if req.members.is_empty() {
            self.partitions.remove(&req.pkey);
            self.generation += 1;
            return Ok(());
        }
        let partition = self.entry(req.pkey, req.partition_name.as_deref());
        partition.ip_over_ib = req.ip_over_ib;
        req.qos.apply(&mut partition.qos);
        let wanted: BTreeMap<Guid, Member> = req
            .members
            .iter()
            .map(|(guid, membership)| {
                let member = Member { membership: *membership, index0: req.index0, ip_over_ib: req.ip_over_ib };
                (*guid, member)
            })
            .collect();
        partition.members.retain(|g, _| wanted.contains_key(g));
        partition.members.extend(wanted);
        self.generation += 1;
        Ok(())
    }

    /// E3/E3': removes GUIDs; non-members and unknown partitions are a no-op success, and a
    /// non-management partition left empty is deleted. Returns how many GUIDs were removed.
    pub(crate) fn remove(&mut self, req: &RemoveRequest) -> usize {
        let Some(partition) = self.partitions.get_mut(&req.pkey) else {
            return 0;
        };
        let removed = req.guids.iter().filter(|g| partition.members.remove(g).is_some()).count();
        if partition.members.is_empty() && req.pkey != MANAGEMENT_PKEY {
            self.partitions.remove(&req.pkey);
        }
        if removed > 0 {
            self.generation += 1;
        }
        removed
    }

    /// E7: creates an empty partition, or updates the settings of an existing one.
    pub(crate) fn create(&mut self, req: &PartitionRequest) {
        let partition = self.entry(req.pkey, req.partition_name.as_deref());
        if let Some(ip_over_ib) = req.ip_over_ib {
            partition.ip_over_ib = ip_over_ib;
        }
        req.qos.apply(&mut partition.qos);
        self.generation += 1;
    }

    /// E9: changes QoS of an existing partition.
    pub(crate) fn set_qos(&mut self, req: &PartitionRequest) -> Result<(), StateError> {
        let partition = self.partitions.get_mut(&req.pkey).ok_or(StateError::UnknownPkey(req.pkey))?;
        req.qos.apply(&mut partition.qos);
        self.generation += 1;
        Ok(())
    }

    /// E8: deletes a partition with all its members.
    pub(crate) fn delete(&mut self, pkey: u16) -> Result<(), StateError> {
        self.partitions.remove(&pkey).ok_or(StateError::UnknownPkey(pkey))?;
        self.generation += 1;
        Ok(())
    }

    /// Puts a partition in place as given, bypassing API validation (test seeding).
    pub(crate) fn seed(&mut self, pkey: u16, partition: Partition) {
        self.partitions.insert(pkey, partition);
        self.generation += 1;
    }

    /// Drops a partition whatever it holds, including the management one (test seeding).
    pub(crate) fn unseed(&mut self, pkey: u16) -> Option<Partition> {
        let removed = self.partitions.remove(&pkey);
        self.generation += 1;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::QosUpdate;

    fn add_req(pkey: u16, guids: &[u64], membership: Membership) -> GuidsRequest {
        GuidsRequest {
            pkey,
            members: guids.iter().map(|g| (Guid::from(*g), membership)).collect(),
            index0: true,
            ip_over_ib: true,
            partition_name: None,
            qos: QosUpdate::default(),
        }
    }

    fn remove_req(pkey: u16, guids: &[u64]) -> RemoveRequest {
        RemoveRequest { pkey, guids: guids.iter().map(|g| Guid::from(*g)).collect() }
    }

    #[test]
    fn a_new_fabric_holds_only_management() {
        let f = Fabric::new(Some(Membership::Full));
        assert_eq!(f.partitions().keys().copied().collect::<Vec<_>>(), vec![0x7fff]);
        assert_eq!(f.get(0x7fff).unwrap().name, "management");
    }

    #[test]
    fn add_creates_with_default_name_and_merges() {
        let mut f = Fabric::new(None);
        f.add(&add_req(5, &[1], Membership::Full)).unwrap();
        f.add(&add_req(5, &[2], Membership::Limited)).unwrap();
        let p = f.get(5).unwrap();
        assert_eq!(p.name, "api_pkey_0x5");
        assert_eq!(p.qos, Qos::default());
        assert_eq!(p.members.len(), 2);
        assert_eq!(p.members[&Guid::from(2)].membership, Membership::Limited);
        assert!(p.members[&Guid::from(1)].index0);
    }

    #[test]
    fn removing_the_last_member_deletes_the_partition() {
        let mut f = Fabric::new(None);
        f.add(&add_req(5, &[1, 2], Membership::Full)).unwrap();
        assert_eq!(f.remove(&remove_req(5, &[1])), 1);
        assert!(f.get(5).is_some());
        assert_eq!(f.remove(&remove_req(5, &[2, 3])), 1);
        assert!(f.get(5).is_none());
        assert_eq!(f.remove(&remove_req(5, &[2])), 0);
    }

    #[test]
    fn removing_a_non_member_changes_nothing() {
        let mut f = Fabric::new(None);
        f.add(&add_req(5, &[1], Membership::Full)).unwrap();
        let before = f.generation();
        assert_eq!(f.remove(&remove_req(5, &[9])), 0);
        assert_eq!(f.generation(), before);
        assert!(f.get(5).is_some());
    }

    #[test]
    fn management_survives_losing_its_members() {
        let mut f = Fabric::new(None);
        let mut mgmt = Partition::management(None);
        mgmt.members.insert(Guid::from(1), Member::default());
        f.seed(MANAGEMENT_PKEY, mgmt);
        f.remove(&remove_req(MANAGEMENT_PKEY, &[1]));
        assert!(f.get(MANAGEMENT_PKEY).is_some());
    }

    #[test]
    fn set_replaces_members_and_empty_set_deletes() {
        let mut f = Fabric::new(None);
        f.add(&add_req(5, &[1, 2], Membership::Full)).unwrap();
        f.set(&add_req(5, &[2, 3], Membership::Limited)).unwrap();
        let keys: Vec<_> = f.get(5).unwrap().members.keys().copied().collect();
        assert_eq!(keys, vec![Guid::from(2), Guid::from(3)]);
        f.set(&add_req(5, &[], Membership::Full)).unwrap();
        assert!(f.get(5).is_none());
    }

    #[test]
    fn unseen_guids_are_refused_whole_when_the_switch_is_on() {
        let mut f = Fabric::new(None);
        f.set_reject_unseen(true);
        f.mark_seen([Guid::from(1)]);
        let err = f.add(&add_req(5, &[1, 2], Membership::Full)).unwrap_err();
        assert_eq!(err, StateError::UnseenGuids(vec![Guid::from(2)]));
        assert!(f.get(5).is_none());
        f.add(&add_req(5, &[1], Membership::Full)).unwrap();
        assert!(f.get(5).is_some());
    }

    #[test]
    fn delete_of_unknown_pkey_is_an_error() {
        let mut f = Fabric::new(None);
        assert_eq!(f.delete(7), Err(StateError::UnknownPkey(7)));
    }
}
