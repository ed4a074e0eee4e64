//! UFM applies partition changes asynchronously: a write is answered once UFM has taken it into its
//! model, and reaches the fabric later, when UFM has regenerated OpenSM's partition file and OpenSM
//! has swept. [`ApplyModel`] sets how much later; until then the change is not visible in the partition
//! listing, and `last_updated` moves when it is applied.
//!
//! Changes are applied in the order they were accepted, each no earlier than its own drawn delay and
//! no earlier than the change before it: a spread delays changes by different amounts but never
//! reorders them, since UFM regenerates the whole partition file from its model each time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::routes::Route;
use crate::service::{SplitMix64, draw};

/// The apply settings. The default, no delay, is the emulator as it always was: a change is visible
/// the moment its request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyModel {
    /// Mean time between a write's answer and its effect.
    pub delay: Duration,
    /// Each change's delay is drawn uniformly from `delay - spread ..= delay + spread`.
    pub spread: Duration,
    /// Seed of the generator the delays are drawn from.
    pub seed: u64,
}

/// An apply model that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("apply spread {spread:?} is larger than the apply delay {delay:?}: a delay would be negative")]
    SpreadAboveDelay { spread: Duration, delay: Duration },
}

impl ApplyModel {
    pub fn new(delay: Duration, spread: Duration, seed: u64) -> Result<Self, ApplyError> {
        let model = ApplyModel { delay, spread, seed };
        model.validate()?;
        Ok(model)
    }

    pub fn validate(&self) -> Result<(), ApplyError> {
        if self.spread > self.delay {
            return Err(ApplyError::SpreadAboveDelay { spread: self.spread, delay: self.delay });
        }
        Ok(())
    }

    /// Whether changes are applied as their requests are answered.
    pub fn is_immediate(&self) -> bool {
        self.delay.is_zero()
    }
}

/// A write accepted but not applied yet.
#[derive(Debug, Clone)]
pub(crate) struct PendingChange {
    pub due: Instant,
    pub route: Route,
    pub query: Option<String>,
    pub body: Vec<u8>,
}

/// The model in force, its generator and the changes waiting.
pub(crate) struct ApplyState {
    model: ApplyModel,
    rng: SplitMix64,
    pub pending: VecDeque<PendingChange>,
}

impl ApplyState {
    pub fn new(model: ApplyModel) -> Self {
        ApplyState { model, rng: SplitMix64(model.seed), pending: VecDeque::new() }
    }

    pub fn model(&self) -> ApplyModel {
        self.model
    }

    /// A new model; changes already waiting keep their times.
    pub fn set_model(&mut self, model: ApplyModel) {
        self.model = model;
        self.rng = SplitMix64(model.seed);
    }

    /// When a change accepted at `now` is applied: its drawn delay later, and not before the change
    /// accepted before it.
    pub fn due(&mut self, now: Instant) -> Instant {
        let due = now + draw(&mut self.rng, self.model.delay, self.model.spread);
        match self.pending.back() {
            Some(last) if last.due > due => last.due,
            _ => due,
        }
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.pending.front().map(|c| c.due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_larger_than_the_delay_is_refused() {
        let err = ApplyModel::new(Duration::from_millis(1), Duration::from_millis(2), 0).unwrap_err();
        assert!(err.to_string().contains("spread 2ms"), "{err}");
        assert!(ApplyModel::default().is_immediate());
        assert!(!ApplyModel::new(Duration::from_millis(5), Duration::from_millis(5), 0).unwrap().is_immediate());
    }

    #[test]
    fn changes_are_never_reordered_by_the_spread() {
        let model = ApplyModel::new(Duration::from_millis(100), Duration::from_millis(100), 3).unwrap();
        let mut state = ApplyState::new(model);
        let start = Instant::now();
        let mut last = start;
        let mut distinct = std::collections::BTreeSet::new();
        for i in 0..500u32 {
            let due = state.due(start + Duration::from_micros(u64::from(i)));
            assert!(due >= last, "change {i} due before the one accepted before it");
            assert!(due <= start + Duration::from_millis(201), "{:?}", due - start);
            distinct.insert(due);
            state.pending.push_back(PendingChange { due, route: Route::Version, query: None, body: Vec::new() });
            last = due;
        }
        assert!(distinct.len() > 1, "the spread is used");
    }
}
