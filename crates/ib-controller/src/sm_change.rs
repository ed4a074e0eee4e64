//! One subnet-manager membership change as the executors carry it out: the existence check a join may
//! need first, the change, and, for a manager that applies changes after answering, reading the
//! partition back until the change shows.

use std::collections::HashSet;
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

/// Reads the partition back until the answered change shows, pausing a little longer each time.
pub(crate) async fn confirm(sm: &dyn SubnetManager, request: &SmRequest) -> Result<(), SmStepError> {
    let mut pause = Duration::from_millis(10);
    loop {
        let members: HashSet<Guid> =
            sm.partition_members(request.pkey).await.map_err(SmStepError::Unconfirmed)?.into_iter().flatten().collect();
        let shown = match request.op {
            SmOp::Add => request.guids.iter().all(|g| members.contains(g)),
            SmOp::Remove => request.guids.iter().all(|g| !members.contains(g)),
        };
        if shown {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
