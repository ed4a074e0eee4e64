//! Shared by the test binaries: the release binary, helm, and running a tool with a deadline.
#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ib_kubernetes_deployment::{CHART, Object, dir, parse};

/// Generous: the machines running tests are shared and slow.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Builds `ib-kubernetes` (once per test binary) and returns its path, read from cargo's own report so
/// that any target directory works.
pub fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--quiet", "--package", "ib-kubernetes", "--bin", "ib-kubernetes", "--message-format=json"])
            .current_dir(dir().join(".."))
            .output()
            .expect("cargo runs");
        let messages: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if !out.status.success() {
            // With JSON output the compiler's diagnostics are on stdout, rendered inside the messages.
            let rendered: Vec<&str> = messages.iter().filter_map(|m| m["message"]["rendered"].as_str()).collect();
            panic!("cargo build failed: {}\n{}", String::from_utf8_lossy(&out.stderr), rendered.join("\n"));
        }
        messages
            .into_iter()
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "ib-kubernetes")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reports the executable")
    })
}

/// Runs `command` to completion, killing it after [`DEADLINE`]: a hung tool fails the test instead of
/// wedging it.
pub fn run(mut command: Command) -> Output {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    // Read both pipes on threads so that a chatty tool cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().expect("stdout reader"), stderr: err.join().expect("stderr reader") }
}

/// The helm binary and a private home for its cache and configuration.
pub struct Helm {
    path: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// `None` (after printing the SKIP line) when no helm is installed.
    pub fn find() -> Option<Helm> {
        match ib_kubernetes_deployment::helm() {
            Some(path) => Some(Helm { path, home: tempfile::tempdir().expect("temp dir") }),
            None => {
                println!(
                    "SKIP: helm not found (IB_KUBERNETES_HELM, target/tools/bin, ~/go/bin, PATH); .ci/run installs it with go install"
                );
                None
            }
        }
    }

    pub fn chart() -> PathBuf {
        dir().join(CHART)
    }

    /// `helm <args>` with the chart path where `{chart}` stands.
    pub fn run(&self, args: &[&str]) -> Output {
        let chart = Self::chart();
        let mut command = Command::new(&self.path);
        for arg in args {
            if *arg == "{chart}" {
                command.arg(&chart);
            } else {
                command.arg(arg);
            }
        }
        for var in ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"] {
            command.env(var, self.home.path().join(var));
        }
        run(command)
    }

    /// `helm template ib-kubernetes <chart> --namespace <ns> --include-crds <extra>`: the text, or the
    /// error output.
    pub fn template(&self, namespace: &str, extra: &[&str]) -> Result<String, String> {
        let mut args = vec!["template", "ib-kubernetes", "{chart}", "--namespace", namespace, "--include-crds"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The rendered objects; panics with helm's message when rendering fails.
    pub fn objects(&self, namespace: &str, extra: &[&str]) -> Vec<Object> {
        let text = self.template(namespace, extra).unwrap_or_else(|e| panic!("helm template {extra:?}: {e}"));
        parse(&text, "helm template").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

pub fn kubectl_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.is_file())
}
