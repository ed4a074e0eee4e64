//! The UFM a GPU scenario runs against: how long the emulated UFM takes per request, how much that
//! varies, and how many requests it serves at once. The settings are switched on once the controller
//! leads and has configured its warm-up pod, so that what is measured is the job, not the start.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ufm_emulator::ServiceModel;

use crate::scenarios::ScenarioError;

/// One UFM's service settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UfmService {
    /// Mean service time of one request, in milliseconds.
    pub service_ms: f64,
    /// Each request's time is drawn uniformly within ± this fraction of the mean.
    pub spread: f64,
    /// Requests served at once; `None` for no limit.
    pub concurrency: Option<usize>,
    /// Seed of the service-time generator, so that runs repeat.
    pub seed: u64,
}

/// Service times, spread, slots and seed for a sweep over several service times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UfmSweep {
    pub service_ms: Vec<f64>,
    pub spread: f64,
    pub concurrency: Option<usize>,
    pub seed: u64,
}

impl Default for UfmSweep {
    /// A fast emulator, a typical UFM and a slow one; a quarter either way; one request at a time.
    fn default() -> Self {
        UfmSweep { service_ms: vec![0.1, 200.0, 1000.0], spread: 0.25, concurrency: Some(1), seed: 1 }
    }
}

impl UfmSweep {
    /// Each service time's settings, checked.
    pub fn settings(&self) -> Result<Vec<UfmService>, ScenarioError> {
        if self.service_ms.is_empty() {
            return Err(ScenarioError::Option {
                option: "--ufm-ms",
                value: String::new(),
                reason: "at least one service time",
            });
        }
        self.service_ms
            .iter()
            .map(|&service_ms| {
                let s = UfmService { service_ms, spread: self.spread, concurrency: self.concurrency, seed: self.seed };
                s.model().map(|_| s)
            })
            .collect()
    }
}

impl UfmService {
    /// The emulator's model for these settings; bad settings name the option and value.
    pub fn model(&self) -> Result<ServiceModel, ScenarioError> {
        if !(self.service_ms.is_finite() && self.service_ms >= 0.0 && self.service_ms <= 3_600_000.0) {
            return Err(ScenarioError::Option {
                option: "--ufm-ms",
                value: self.service_ms.to_string(),
                reason: "a service time in milliseconds, 0 to 3600000",
            });
        }
        if !(self.spread.is_finite() && (0.0..=1.0).contains(&self.spread)) {
            return Err(ScenarioError::Option {
                option: "--ufm-spread",
                value: self.spread.to_string(),
                reason: "a fraction of the service time, 0 to 1",
            });
        }
        if self.concurrency == Some(0) {
            return Err(ScenarioError::Option {
                option: "--ufm-concurrency",
                value: "0".into(),
                reason: "at least one request at a time (leave it out for no limit)",
            });
        }
        let time = Duration::from_secs_f64(self.service_ms / 1000.0);
        let spread = time.mul_f64(self.spread);
        ServiceModel::new(time, spread, self.concurrency, self.seed).map_err(|e| ScenarioError::Option {
            option: "--ufm-spread",
            value: self.spread.to_string(),
            reason: if matches!(e, ufm_emulator::ServiceError::ZeroConcurrency) {
                "at least one request at a time"
            } else {
                "the spread must not exceed the service time"
            },
        })
    }

    pub fn label(&self) -> String {
        let slots = self.concurrency.map_or_else(|| "no limit".to_owned(), |n| format!("{n} at a time"));
        format!("{} ms ± {:.0}%, {slots}", self.service_ms, self.spread * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sweep_is_the_three_service_times() {
        let settings = UfmSweep::default().settings().unwrap();
        assert_eq!(settings.iter().map(|s| s.service_ms).collect::<Vec<_>>(), [0.1, 200.0, 1000.0]);
        let model = settings[1].model().unwrap();
        assert_eq!(model.time, Duration::from_millis(200));
        assert_eq!(model.spread, Duration::from_millis(50));
        assert_eq!(model.concurrency.map(|n| n.get()), Some(1));
    }

    #[test]
    fn bad_settings_name_the_option_and_value() {
        let base = UfmService { service_ms: 200.0, spread: 0.25, concurrency: Some(1), seed: 1 };
        for (bad, option, value) in [
            (UfmService { service_ms: -1.0, ..base }, "--ufm-ms", "-1"),
            (UfmService { service_ms: f64::NAN, ..base }, "--ufm-ms", "NaN"),
            (UfmService { spread: 1.5, ..base }, "--ufm-spread", "1.5"),
            (UfmService { concurrency: Some(0), ..base }, "--ufm-concurrency", "0"),
        ] {
            let err = bad.model().unwrap_err().to_string();
            assert!(err.contains(option) && err.contains(value), "{err}");
        }
        let empty = UfmSweep { service_ms: vec![], ..UfmSweep::default() };
        assert!(empty.settings().unwrap_err().to_string().contains("--ufm-ms"));
    }
}
