//! `noop`: the noop subnet manager as an exec plugin. Accepts every change and lists nothing, like the
//! built-in; useful as a template and to check a deployment's plugin directory.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ib_sm::exec::plugin::main(|| Ok(Box::new(ib_sm::Noop)))
}
