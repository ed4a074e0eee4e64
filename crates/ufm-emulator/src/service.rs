//! How long the emulated UFM takes to serve a request and how many it serves at once. A real UFM
//! answers a partition request in hundreds of milliseconds and works through its REST requests a
//! few at a time; an emulator that answers everything at once in a tenth of a millisecond hides the
//! wait that batching and pipelining in a client are there to shorten.
//!
//! A request takes a slot (when the number of slots is limited), holds it for its service time, is
//! then applied and answered, and gives the slot back; waiting requests get slots in arrival order.
//! Service times are drawn from a seeded generator in the order requests start service, so a run
//! with the same seed and the same order of requests sees the same times.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// The service settings. [`ServiceModel::instant`] (the default) is the emulator as it always was:
/// no service time, no limit on concurrent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceModel {
    /// Mean service time of one request.
    pub time: Duration,
    /// Each request's time is drawn uniformly from `time - spread ..= time + spread`.
    pub spread: Duration,
    /// Requests served at once; `None` for no limit.
    pub concurrency: Option<NonZeroUsize>,
    /// Seed of the generator the service times are drawn from.
    pub seed: u64,
}

/// A service model that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("service spread {spread:?} is larger than the service time {time:?}: a time would be negative")]
    SpreadAboveTime { spread: Duration, time: Duration },
    #[error("service concurrency 0: at least one request must be served at a time")]
    ZeroConcurrency,
}

impl ServiceModel {
    /// No service time and no limit.
    pub const fn instant() -> Self {
        ServiceModel { time: Duration::ZERO, spread: Duration::ZERO, concurrency: None, seed: 0 }
    }

    /// `concurrency` 0 and a spread larger than the time are refused.
    pub fn new(time: Duration, spread: Duration, concurrency: Option<usize>, seed: u64) -> Result<Self, ServiceError> {
        let concurrency = match concurrency {
            None => None,
            Some(n) => Some(NonZeroUsize::new(n).ok_or(ServiceError::ZeroConcurrency)?),
        };
        let model = ServiceModel { time, spread, concurrency, seed };
        model.validate()?;
        Ok(model)
    }

    pub fn validate(&self) -> Result<(), ServiceError> {
        if self.spread > self.time {
            return Err(ServiceError::SpreadAboveTime { spread: self.spread, time: self.time });
        }
        Ok(())
    }

    /// Whether requests pass without waiting at all.
    pub fn is_instant(&self) -> bool {
        self.time.is_zero() && self.concurrency.is_none()
    }
}

impl Default for ServiceModel {
    fn default() -> Self {
        ServiceModel::instant()
    }
}

/// When one request was served, as the emulator measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpan {
    /// It got a slot (arrival, when slots are unlimited).
    pub start: Instant,
    /// Its service time was over; it was applied and answered right after.
    pub end: Instant,
    /// The service time drawn for it.
    pub drawn: Duration,
}

/// The model in force, its slots and its generator.
pub(crate) struct ServiceState {
    model: ServiceModel,
    slots: Option<Arc<Semaphore>>,
    rng: SplitMix64,
}

impl ServiceState {
    pub fn new(model: ServiceModel) -> Self {
        ServiceState {
            model,
            slots: model.concurrency.map(|n| Arc::new(Semaphore::new(n.get()))),
            rng: SplitMix64(model.seed),
        }
    }

    pub fn model(&self) -> ServiceModel {
        self.model
    }

    /// The slots a request arriving now queues on. Requests already queued keep the slots they
    /// queued on when the model changes, so a change never strands them.
    pub fn slots(&self) -> Option<Arc<Semaphore>> {
        self.slots.clone()
    }

    /// The next service time: `time ± spread`, uniform.
    pub fn draw(&mut self) -> Duration {
        draw(&mut self.rng, self.model.time, self.model.spread)
    }
}

/// A time drawn uniformly from `mean - spread ..= mean + spread`.
pub(crate) fn draw(rng: &mut SplitMix64, mean: Duration, spread: Duration) -> Duration {
    if spread.is_zero() {
        return mean;
    }
    let width = spread.as_nanos().saturating_mul(2).saturating_add(1);
    let offset = u128::from(rng.next()) % width;
    let nanos = mean.as_nanos().saturating_sub(spread.as_nanos()).saturating_add(offset);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A small, fast generator with a 64-bit state: enough for spreading service times, and
/// reproducible from its seed on every platform.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_models_name_the_setting() {
        let err = ServiceModel::new(Duration::from_millis(1), Duration::from_millis(2), None, 0).unwrap_err();
        assert_eq!(
            err,
            ServiceError::SpreadAboveTime { spread: Duration::from_millis(2), time: Duration::from_millis(1) }
        );
        assert!(err.to_string().contains("spread 2ms"), "{err}");
        let err = ServiceModel::new(Duration::ZERO, Duration::ZERO, Some(0), 0).unwrap_err();
        assert!(err.to_string().contains("concurrency 0"), "{err}");
        assert!(ServiceModel::new(Duration::from_millis(5), Duration::from_millis(5), Some(1), 0).is_ok());
    }

    #[test]
    fn draws_stay_in_range_and_repeat_with_the_seed() {
        let model = ServiceModel::new(Duration::from_millis(200), Duration::from_millis(50), None, 7).unwrap();
        let draws = |model| {
            let mut state = ServiceState::new(model);
            (0..1000).map(|_| state.draw()).collect::<Vec<_>>()
        };
        let a = draws(model);
        assert_eq!(a, draws(model), "same seed, same times");
        assert_ne!(a, draws(ServiceModel { seed: 8, ..model }), "another seed, other times");
        assert!(a.iter().all(|d| *d >= Duration::from_millis(150) && *d <= Duration::from_millis(250)), "{a:?}");
        // Both halves of the range are used.
        assert!(a.iter().any(|d| *d < Duration::from_millis(175)) && a.iter().any(|d| *d > Duration::from_millis(225)));
        let fixed = ServiceModel::new(Duration::from_millis(3), Duration::ZERO, None, 7).unwrap();
        assert!(draws(fixed).iter().all(|d| *d == Duration::from_millis(3)));
    }

    #[test]
    fn only_the_default_is_instant() {
        assert!(ServiceModel::default().is_instant());
        assert!(!ServiceModel::new(Duration::ZERO, Duration::ZERO, Some(1), 0).unwrap().is_instant());
        assert!(!ServiceModel::new(Duration::from_micros(100), Duration::ZERO, None, 0).unwrap().is_instant());
    }
}
