//! Log setup: plain lines on stderr by default, JSON on request; `-debug` raises the level. `RUST_LOG`
//! overrides both for finer control.

use ib_controller::config::LogFormat;
use tracing_subscriber::EnvFilter;

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
