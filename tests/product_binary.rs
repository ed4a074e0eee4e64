//! The product binary carries no test bed. `make build` and the Dockerfile compile `ib-kubernetes`
//! with `--no-default-features`; its dependency tree (normal edges only: what is linked into the
//! binary) must then hold none of the emulators, the demo and simulator, or the crates only they use.
//! The same query with the default features must find them, so the check itself is shown to see them.

use std::collections::BTreeSet;
use std::process::Command;

/// Packages of the test bed, and crates that only the test bed needs (certificate generation for the
/// emulated UFM, progress bars, temporary directories, the simulated OpenSM fabric, the soak and the
/// benchmarks).
const TEST_BED: &[&str] = &[
    "ib-sim",
    "kube-emulator",
    "ufm-emulator",
    "ib-fabric",
    "ib-chaos",
    "ib-bench",
    "rcgen",
    "indicatif",
    "tempfile",
    "plotters",
    "proptest",
];

/// The workspace's own crates.
const WORKSPACE: &[&str] = &[
    "ib-model",
    "ib-sm",
    "ib-controller",
    "ib-kubernetes",
    "ib-sim",
    "ib-fabric",
    "ib-chaos",
    "ib-bench",
    "kube-emulator",
    "ufm-emulator",
];

/// Every package linked into `ib-kubernetes`, built with `features`.
fn linked_packages(features: &[&str]) -> BTreeSet<String> {
    tree("ib-kubernetes", features)
}

/// The packages `cargo tree` lists for `package` over normal edges, with `extra` arguments.
fn tree(package: &str, extra: &[&str]) -> BTreeSet<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--manifest-path", manifest, "--package", package, "--edges", "normal"])
        .args(["--prefix", "none", "--format", "{p}", "--locked", "--offline"])
        .args(extra)
        .output()
        .expect("running cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    // Lines are `name vX.Y.Z (path)` with a trailing `(*)` on repeats.
    String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_image_binary_links_no_test_bed() {
    let product = linked_packages(&["--no-default-features"]);
    assert!(product.contains("ib-controller") && product.contains("ib-sm"), "the tree was read: {product:?}");
    let carried: Vec<_> = TEST_BED.iter().filter(|name| product.contains(**name)).collect();
    assert!(carried.is_empty(), "the product binary links test-bed packages: {carried:?}");
}

#[test]
fn the_default_build_has_the_test_bed_the_check_looks_for() {
    let default = linked_packages(&[]);
    for name in ["ib-sim", "kube-emulator", "ufm-emulator", "rcgen", "indicatif"] {
        assert!(default.contains(name), "{name} is missing from the default build: {default:?}");
    }
}

#[test]
fn make_build_and_the_dockerfile_leave_the_test_bed_out() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["Makefile", "Dockerfile"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).expect(file);
        let builds: Vec<_> =
            text.lines().filter(|line| line.contains("cargo build") || line.contains("$(CARGO) build")).collect();
        let product: Vec<_> = builds.iter().filter(|line| line.contains("--bin ib-kubernetes")).collect();
        assert!(!product.is_empty(), "{file} builds the product binary");
        for line in product {
            assert!(line.contains("--no-default-features"), "{file} builds the product with the test bed: {line}");
        }
    }
}

/// docs/architecture.md: dependencies point inward. The model imports no workspace crate, the subnet
/// managers only the model, the controller only those two, the binary only the three.
#[test]
fn product_crates_import_only_inward() {
    for (package, allowed, extra) in [
        ("ib-model", &[][..], &[][..]),
        ("ib-sm", &["ib-model"][..], &[][..]),
        ("ib-controller", &["ib-model", "ib-sm"][..], &[][..]),
        ("ib-kubernetes", &["ib-model", "ib-sm", "ib-controller"][..], &["--no-default-features"][..]),
    ] {
        let direct = tree(package, &[&["--depth", "1"][..], extra].concat());
        let imported: Vec<_> =
            direct.iter().filter(|name| *name != package && WORKSPACE.contains(&name.as_str())).collect();
        let outward: Vec<_> = imported.iter().filter(|name| !allowed.contains(&name.as_str())).collect();
        assert!(outward.is_empty(), "{package} imports {outward:?}; it may import only {allowed:?}");
    }
}
