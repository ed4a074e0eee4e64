//! `ufm`: the NVIDIA UFM subnet manager as an exec plugin. Reads the same `UFM_*` variables as the
//! built-in (the daemon passes them on) and speaks exactly the same REST wire format. Its errors say
//! whether a failed change may nevertheless have been applied (`outcomeUnknown`).
#![forbid(unsafe_code)]

use ib_sm::exec::plugin::{self, code_of};
use ib_sm::exec::protocol::{ErrorResult, codes};
use ib_sm::ufm::UfmConfig;
use ib_sm::{SubnetManager, Ufm};

fn main() -> std::process::ExitCode {
    plugin::main(build)
}

/// The client, from the environment; configured afresh for every call, as each call is one process.
fn build() -> Result<Box<dyn SubnetManager>, ErrorResult> {
    let config = UfmConfig::from_env(&plugin::process_env()).map_err(|e| {
        ErrorResult::new(codes::INVALID_CONFIG, "the UFM plugin cannot be configured").with_details(e.to_string())
    })?;
    let ufm = Ufm::new(config).map_err(|e| ErrorResult::new(code_of(&e), e.to_string()))?;
    Ok(Box::new(ufm))
}
