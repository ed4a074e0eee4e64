//! `opensm`: the OpenSM subnet manager as an exec plugin. Reads the same `OPENSM_*` variables as the
//! built-in (the daemon passes on every variable with the plugin's name as prefix) and writes the same
//! block of `partitions.conf`. Each call is one process: calls of concurrent processes take turns on
//! the file through the writers' lock, and every call that changes the file, or is the first to find
//! a reload owed, reloads OpenSM. Its errors say whether a failed change may nevertheless have been
//! applied (`outcomeUnknown`).
#![forbid(unsafe_code)]

use ib_sm::exec::plugin;
use ib_sm::exec::protocol::{ErrorResult, codes};
use ib_sm::opensm::OpenSmConfig;
use ib_sm::{OpenSm, SubnetManager};

fn main() -> std::process::ExitCode {
    plugin::main(build)
}

fn build() -> Result<Box<dyn SubnetManager>, ErrorResult> {
    let config = OpenSmConfig::from_env(&plugin::process_env()).map_err(|e| {
        ErrorResult::new(codes::INVALID_CONFIG, "the OpenSM plugin cannot be configured").with_details(e.to_string())
    })?;
    Ok(Box::new(OpenSm::new(config)))
}
