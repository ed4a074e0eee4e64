//! Where the tools that run the controller as its own process (the chaos soak, the benchmarks) find
//! the `ib-kubernetes` binary.

use std::path::PathBuf;

/// `explicit` when given, else the `ib-kubernetes` next to the running program (cargo puts every
/// binary of a profile in one directory). An error saying how to get one when there is none.
pub fn controller_binary(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let found = explicit
        .or_else(|| std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("ib-kubernetes"))));
    match found {
        Some(path) if path.is_file() => Ok(path),
        Some(path) => Err(format!(
            "no ib-kubernetes binary at {}; build it (cargo build --release) or pass --controller",
            path.display()
        )),
        None => Err("cannot tell where this program is; pass --controller".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_must_exist() {
        let err = controller_binary(Some(PathBuf::from("/nonexistent/ib-kubernetes"))).unwrap_err();
        assert!(err.contains("/nonexistent/ib-kubernetes") && err.contains("cargo build --release"), "{err}");
        let this = std::env::current_exe().unwrap();
        assert_eq!(controller_binary(Some(this.clone())).unwrap(), this);
    }
}
