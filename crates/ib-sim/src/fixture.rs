//! The emulated cluster a controller runs against: the Kubernetes API emulator, the UFM emulator and the
//! environment a deployment would give the controller, pointing at both. One fixture for the controller
//! tests, the demo, the benchmarks and the chaos soak; each sets its own emulator options and adds its
//! own variables (timings, pool range) to [`EmulatedCluster::controller_env`].

use std::path::{Path, PathBuf};

use ib_sm::EnvMap;
use kube_emulator::{EmulatorConfig, KubeEmulator, RunningEmulator};
use ufm_emulator::{RunningUfm, UfmConfig, UfmEmulator};

/// The UFM user every harness logs in as (UFM's factory default).
pub const UFM_USER: &str = "admin";
/// Where the controller keeps its Lease, as in the deployment.
pub const CONTROLLER_NAMESPACE: &str = "kube-system";
/// The node name half of every harness controller's identity (`<node>_<replica>`).
pub const NODE: &str = "control-plane-1";

/// Why the emulated cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The Kubernetes API emulator did not start.
    #[error("the Kubernetes API emulator did not start: {0}")]
    Kube(#[from] kube_emulator::StartError),
    /// The UFM emulator did not start.
    #[error("the UFM emulator did not start: {0}")]
    Ufm(#[from] ufm_emulator::StartError),
    /// The kubeconfig for a controller process could not be written.
    #[error("cannot write the kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Where it was to be written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Both emulators, and what a controller needs to reach them.
pub struct EmulatedCluster {
    /// The Kubernetes API emulator.
    pub kube: RunningEmulator,
    /// The UFM emulator.
    pub ufm: RunningUfm,
    ufm_password: String,
    kubeconfig: Option<PathBuf>,
}

impl EmulatedCluster {
    /// Starts the API emulator with `kube` and the UFM emulator with `ufm` (plain HTTP or HTTPS with a
    /// generated CA, as `ufm` says), logging in as [`UFM_USER`] with `password`.
    pub async fn start(kube: EmulatorConfig, ufm: UfmConfig, password: &str) -> Result<Self, FixtureError> {
        let kube = KubeEmulator::start(kube).await?;
        let ufm = UfmEmulator::start(ufm.with_credentials(UFM_USER, password)).await?;
        Ok(EmulatedCluster { kube, ufm, ufm_password: password.to_owned(), kubeconfig: None })
    }

    /// Writes a kubeconfig for the API emulator at `path`; from then on the controller's environment
    /// names it as `KUBECONFIG` (what a controller in its own process, or `startup::start`, reads).
    pub fn write_kubeconfig(&mut self, path: &Path) -> Result<(), FixtureError> {
        self.kube
            .write_kubeconfig(path)
            .map_err(|source| FixtureError::Kubeconfig { path: path.to_owned(), source })?;
        self.kubeconfig = Some(path.to_owned());
        Ok(())
    }

    /// The kubeconfig written by [`EmulatedCluster::write_kubeconfig`], if any.
    pub fn kubeconfig(&self) -> Option<&Path> {
        self.kubeconfig.as_deref()
    }

    /// The UFM password the controller logs in with.
    pub fn ufm_password(&self) -> &str {
        &self.ufm_password
    }

    /// The environment a deployment would give the controller replica `replica`, pointing at these
    /// emulators: the `ufm` subnet manager over the emulator's scheme (trusting only its CA over
    /// HTTPS), the Lease in [`CONTROLLER_NAMESPACE`], the admin server on a free loopback port, and no
    /// exec plugin (`DAEMON_SM_PLUGIN_PATH` names a directory that does not exist).
    pub fn controller_env(&self, replica: &str) -> EnvMap {
        let mut env: EnvMap = [
            ("DAEMON_SM_PLUGIN", "ufm"),
            ("DAEMON_SM_PLUGIN_PATH", "/nonexistent/ib-kubernetes-plugins"),
            ("UFM_USERNAME", UFM_USER),
            ("UFM_ADDRESS", "127.0.0.1"),
            ("ADMIN_ADDRESS", "127.0.0.1:0"),
            ("K8S_NODE", NODE),
            ("POD_NAMESPACE", CONTROLLER_NAMESPACE),
        ]
        .into_iter()
        .collect();
        env.set("POD_UID", replica);
        env.set("UFM_PASSWORD", self.ufm_password.as_str());
        env.set("UFM_PORT", self.ufm.addr().port().to_string());
        match self.ufm.ca_pem() {
            Some(ca) => {
                env.set("UFM_HTTP_SCHEMA", "https");
                env.set("UFM_CERTIFICATE", ca);
            }
            None => env.set("UFM_HTTP_SCHEMA", "http"),
        }
        if let Some(path) = &self.kubeconfig {
            env.set("KUBECONFIG", path.display().to_string());
        }
        env
    }

    /// Stops both emulators.
    pub async fn shutdown(self) {
        self.kube.shutdown().await;
        self.ufm.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_environment_reaches_both_emulators_as_a_deployment_would() {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster =
            EmulatedCluster::start(EmulatorConfig::default(), UfmConfig::https(), "fixture-pw").await.unwrap();
        let env = cluster.controller_env("r1");
        assert_eq!(env.get("UFM_HTTP_SCHEMA"), Some("https"));
        assert!(env.get("UFM_CERTIFICATE").is_some_and(|ca| ca.contains("BEGIN CERTIFICATE")));
        assert_eq!(env.get("KUBECONFIG"), None, "no kubeconfig written yet");
        cluster.write_kubeconfig(&dir.path().join("kubeconfig")).unwrap();
        let env = cluster.controller_env("r1");
        let config = ib_controller::Config::from_env(&env, None).expect("a valid controller configuration");
        assert_eq!(config.identity.holder(), format!("{NODE}_r1"));
        assert!(Path::new(env.get("KUBECONFIG").unwrap()).is_file());
        assert_eq!(env.get("UFM_PORT"), Some(cluster.ufm.addr().port().to_string().as_str()));
        cluster.shutdown().await;

        let cluster = EmulatedCluster::start(EmulatorConfig::default(), UfmConfig::http(), "pw").await.unwrap();
        let env = cluster.controller_env("r2");
        assert_eq!((env.get("UFM_HTTP_SCHEMA"), env.get("UFM_CERTIFICATE")), (Some("http"), None));
        cluster.shutdown().await;
    }
}
