//! Log setup: plain lines on stderr by default, JSON on request; `-debug` raises the level. `RUST_LOG`
//! overrides both for finer control.

use ib_controller::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Log setup for the controller (`run`).
pub fn init(format: LogFormat, debug: bool) {
    let level = if debug { "debug" } else { "info" };
    // Dependencies stay at warn: their debug output is noise for users of this daemon.
    let default = format!("warn,ib_kubernetes={level},ib_controller={level},ib_sm={level},ib_model={level}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Log setup for `status`, whose report is the output: errors only unless `-debug`; `RUST_LOG`
/// overrides. kube-client's lines stay off: a failed request is reported once, as the command's error.
pub fn init_command(debug: bool) {
    let default =
        if debug { "warn,ib_kubernetes=debug,ib_controller=debug,kube_client=off" } else { "error,kube_client=off" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
}
