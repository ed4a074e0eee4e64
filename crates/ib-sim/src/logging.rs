//! Log setup for the `demo` and `sim` commands. The demo's own output (progress, summary) is what a
//! user reads, so logs stay at `error` unless asked: the controller's warnings about the demo's
//! deliberately bad pods are expected and are quoted in the summary as Events instead. `-debug` shows
//! the controller at work; `RUST_LOG` overrides both.
//!
//! kube-client's own error lines are silenced by default: `Controller::shutdown` stops the lease and
//! the admin server but not the watch tasks, which keep reconnecting to the emulator that was just
//! stopped until the process exits, and each attempt logs a spurious `Connect` error.

use tracing_subscriber::EnvFilter;

/// `quiet` is the filter without `-debug`, e.g. `error` for the demo, `warn` for `sim`.
pub fn init(quiet: &str, debug: bool) {
    let default = if debug {
        "warn,ib_controller=debug,ib_sm=debug,ib_sim=debug,kube_emulator=info,kube_client=off".to_owned()
    } else {
        format!("{quiet},kube_client=off")
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
}
