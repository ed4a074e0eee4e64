//! One subnet-manager membership change as the executors carry it out: the existence check a join may
//! need first, the change, and, for a manager that applies changes after answering, reading the
//! partition back until the change shows.

use std::time::Duration;

use ib_model::{Guid, PKey, SmFailure, SmOp, SmRequest};
use ib_sm::{SmError, SubnetManager};

/// Why a subnet-manager request did not succeed, as the executor sees it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmStepError {
    /// The change failed, or the check before it.
    #[error(transparent)]
    Change(#[from] SmError),
    /// The join needs the partition to exist, and the subnet manager does not have it.
    #[error("partition {0} does not exist and may not be created")]
    PartitionNotFound(PKey),
    /// The change was answered, but reading it back failed: it may or may not be in effect.
    #[error("the change was answered but could not be read back: {0}")]
    Unconfirmed(SmError),
}

impl SmStepError {
    /// What the state is told.
    pub(crate) fn failure(&self) -> SmFailure {
        match self {
            SmStepError::Change(e) => SmFailure { kind: e.label(), unknown: e.outcome_unknown() },
            SmStepError::PartitionNotFound(_) => SmFailure { kind: SmFailure::PARTITION_NOT_FOUND, unknown: false },
            SmStepError::Unconfirmed(e) => SmFailure { kind: e.label(), unknown: true },
        }
    }
}

/// Sends one membership change; a join that may not create its partition first checks it exists.
pub(crate) async fn change(sm: &dyn SubnetManager, request: &SmRequest) -> Result<(), SmStepError> {
    match request.op {
        SmOp::Add => {
            if request.must_exist && sm.partition_members(request.pkey).await?.is_none() {
                return Err(SmStepError::PartitionNotFound(request.pkey));
            }
            let name = request.partition_name.as_deref();
            sm.add_guids_named(request.pkey, &request.guids, &request.options, name).await?;
        }
        SmOp::Remove => sm.remove_guids(request.pkey, &request.guids).await?,
    }
    Ok(())
}

/// Whether `members` (a partition as read back) shows the change of `op` for every GUID of `wanted`
/// (sorted, each once). A partition has thousands of members and a change a few GUIDs, read back after
/// every change: the members are looked up among the few, instead of put into a table of their own.
fn shows(op: SmOp, wanted: &[Guid], members: &[Guid]) -> bool {
    let mut seen = vec![false; wanted.len()];
    for member in members {
        if let Ok(at) = wanted.binary_search(member) {
            seen[at] = true;
        }
    }
    match op {
        SmOp::Add => seen.iter().all(|s| *s),
        SmOp::Remove => !seen.iter().any(|s| *s),
    }
}

/// Reads the partition back until the answered change shows, pausing a little longer each time.
pub(crate) async fn confirm(sm: &dyn SubnetManager, request: &SmRequest) -> Result<(), SmStepError> {
    let mut pause = Duration::from_millis(10);
    let mut wanted = request.guids.clone();
    wanted.sort_unstable();
    wanted.dedup();
    loop {
        let members = sm.partition_members(request.pkey).await.map_err(SmStepError::Unconfirmed)?;
        if shows(request.op, &wanted, members.as_deref().unwrap_or_default()) {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The same answer as asking a set of the members about each GUID of the change.
        #[test]
        fn a_change_shows_as_a_set_of_the_members_says(
            wanted in proptest::collection::vec(0u64..32, 0..6),
            members in proptest::collection::vec(0u64..32, 0..40),
        ) {
            let wanted: Vec<Guid> = wanted.into_iter().map(Guid::from_u64).collect();
            let members: Vec<Guid> = members.into_iter().map(Guid::from_u64).collect();
            let set: HashSet<Guid> = members.iter().copied().collect();
            let mut sorted = wanted.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(shows(SmOp::Add, &sorted, &members), wanted.iter().all(|g| set.contains(g)));
            prop_assert_eq!(shows(SmOp::Remove, &sorted, &members), wanted.iter().all(|g| !set.contains(g)));
        }
    }
}
