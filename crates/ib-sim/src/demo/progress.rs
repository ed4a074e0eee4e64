//! Progress while the demo runs: bars on a terminal, a plain line a second otherwise (CI logs).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, lines otherwise.
    Auto,
    Bars,
    Lines,
    Off,
}

/// Where the run stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: u64,
    pub configured: u64,
    pub running: u64,
}

enum Backend {
    Bars { _multi: MultiProgress, bars: [ProgressBar; 3], phase: ProgressBar },
    Lines { last: Mutex<Option<Instant>>, totals: Counts },
    Off,
}

pub struct Progress {
    backend: Backend,
    started: Instant,
}

/// Lines mode prints at most this often.
const LINE_EVERY: Duration = Duration::from_secs(1);

impl Progress {
    pub fn new(mode: ProgressMode, totals: Counts) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bars,
            ProgressMode::Auto => ProgressMode::Lines,
            other => other,
        };
        let backend = match mode {
            ProgressMode::Bars => {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
                let style = ProgressStyle::with_template("{prefix:>11} [{bar:40.cyan/blue}] {pos:>5}/{len:5} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                let bar = |label: &str, len: u64| {
                    let bar = multi.add(ProgressBar::new(len).with_style(style.clone()));
                    bar.set_prefix(label.to_owned());
                    bar
                };
                let bars = [
                    bar("created", totals.created),
                    bar("configured", totals.configured),
                    bar("running", totals.running),
                ];
                let phase = multi.add(ProgressBar::new_spinner());
                phase.set_style(
                    ProgressStyle::with_template("{spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                phase.enable_steady_tick(Duration::from_millis(100));
                Backend::Bars { _multi: multi, bars, phase }
            }
            ProgressMode::Lines => Backend::Lines { last: Mutex::new(None), totals },
            ProgressMode::Auto | ProgressMode::Off => Backend::Off,
        };
        Progress { backend, started: Instant::now() }
    }

    /// Announces a phase.
    pub fn phase(&self, text: &str) {
        match &self.backend {
            Backend::Bars { phase, .. } => phase.set_message(text.to_owned()),
            Backend::Lines { .. } => eprintln!("[{:>5.1}s] {text}", self.started.elapsed().as_secs_f64()),
            Backend::Off => {}
        }
    }

    pub fn update(&self, counts: Counts) {
        match &self.backend {
            Backend::Bars { bars, .. } => {
                for (bar, n) in bars.iter().zip([counts.created, counts.configured, counts.running]) {
                    bar.set_position(n);
                }
            }
            Backend::Lines { last, totals } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some_and(|t| t.elapsed() < LINE_EVERY) {
                    return;
                }
                *last = Some(Instant::now());
                eprintln!(
                    "[{:>5.1}s]   created {}/{}, configured {}/{}, running {}/{}",
                    self.started.elapsed().as_secs_f64(),
                    counts.created,
                    totals.created,
                    counts.configured,
                    totals.configured,
                    counts.running,
                    totals.running
                );
            }
            Backend::Off => {}
        }
    }

    /// Leaves the bars as they are and stops redrawing.
    pub fn finish(&self) {
        if let Backend::Bars { bars, phase, .. } = &self.backend {
            phase.finish_and_clear();
            for bar in bars {
                bar.abandon();
            }
        }
    }
}
