//! How the outcomes of the work a plan asked for change the state.

use std::collections::BTreeSet;

use super::State;
use crate::guid::Guid;
use crate::membership::ListedMembership;
use crate::pending::PendingReason;
use crate::pod::PodUid;
use crate::requests::{PatchOutcome, SmFailure, SmRequest};

impl State {
    /// The subnet manager's listing: (partition name as the SM writes it, GUID).
    pub fn sm_listed<'a, I: IntoIterator<Item = (&'a str, Guid)>>(&mut self, listing: I) {
        let asked_at = self.flight.listing_done();
        let fresh = ListedMembership::from_listing(listing, self.owners.range());
        self.owners.reserve_listed(fresh.len());
        let settled: BTreeSet<Guid> =
            self.owners.uncertain_guids().filter(|g| !self.flight.changed_since(*g, asked_at)).collect();
        // Sorted, as a vector of exactly its size: every GUID of the fabric passes through here.
        let mut guids: Vec<Guid> =
            self.owners.sm().guids().chain(fresh.guids()).chain(settled.iter().copied()).collect();
        guids.sort_unstable();
        guids.dedup();
        for g in guids {
            let settles = settled.contains(&g);
            if settles {
                self.records.mark(g);
            } else if self.owners.op_in_flight(g)
                || self.flight.changed_since(g, asked_at)
                || self.owners.is_uncertain(g)
            {
                continue;
            }
            self.owners.listed(g, fresh.partitions(g), settles);
            // Marked already when every GUID the subnet manager holds is (a leader's start).
            if !(self.dirty.guids.is_every() && self.owners.sm().holds(g)) {
                self.dirty.guids.insert(g);
            }
        }
        self.flight.seen_by(asked_at);
        if self.phase.sm_read() {
            self.mark_all_dirty();
        }
        // The listing may have freed GUIDs: pods waiting on an exhausted pool try again, rather than
        // waiting for a release that may never come.
        self.owners.wake_blocked();
    }

    /// The listing failed; the caller retries it after a backoff with [`resync`](Self::resync).
    pub fn sm_list_failed(&mut self) {
        self.flight.listing_failed();
    }

    /// A subnet-manager request ended.
    pub fn sm_done(&mut self, request: &SmRequest, result: Result<(), SmFailure>) {
        self.flight.tick();
        for &g in &request.guids {
            if !self.owners.finish_op(g, request.op, request.pkey, &result) {
                // Not ours (asked before this replica's leadership began): the next listing tells.
                continue;
            }
            self.flight.touch(g);
            match &result {
                Ok(()) => {
                    self.dirty.guids.insert(g);
                }
                Err(failure) if failure.unknown => self.flight.want_listing(),
                Err(_) => {}
            }
            self.records.mark(g);
            self.wake_owner(g);
        }
    }

    /// Lets GUIDs whose request failed be tried again.
    pub fn retry_guids(&mut self, guids: &[Guid]) {
        for g in guids {
            if self.owners.retry(*g) {
                self.dirty.guids.insert(*g);
                self.wake_owner(*g);
            }
        }
    }

    /// A pod patch ended.
    pub fn patch_done(&mut self, uid: &PodUid, outcome: PatchOutcome) {
        match outcome {
            PatchOutcome::Applied(view) => {
                self.flight.patch_ended(uid, false);
                self.apply_pod(view);
            }
            PatchOutcome::Conflict => {
                // Planned on a stale pod. The caller re-reads it and then calls `retry_pod`; planning
                // again before that would only conflict again.
                self.flight.patch_ended(uid, true);
            }
            PatchOutcome::NotFound => {
                self.flight.patch_dropped(uid);
                self.delete_pod(uid);
            }
            PatchOutcome::Failed { message, .. } => {
                self.flight.patch_ended(uid, true);
                self.planner().set_pending(uid, PendingReason::PatchFailed { message });
            }
        }
    }

    /// Lets a pod whose patch failed or conflicted be planned again.
    pub fn retry_pod(&mut self, uid: &PodUid) {
        if self.flight.retry_patch(uid) {
            self.dirty.pods.insert(uid.clone());
        }
    }
}
