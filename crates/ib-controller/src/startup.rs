//! From a validated configuration to a running controller: the subnet-manager client, the Kubernetes
//! client and the controller. Shared by the binary and the demo, so both take exactly the same path.

use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tracing::{info, warn};

use ib_sm::exec::{ExecConfig, ExecPlugin, find_plugin};
use ib_sm::{EnvMap, Noop, OpenSm, SmError, SubnetManager, Ufm};

use crate::config::{Config, SmSelection};
use crate::controller::{Controller, ControllerError};

/// Why the controller could not be started from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `DAEMON_SM_PLUGIN` names neither a built-in plugin nor an executable.
    #[error(
        "subnet manager plugin {name:?}: no executable {path}/{name} and no built-in plugin of that name (built-in: ufm, opensm, noop)"
    )]
    UnknownPlugin {
        /// The plugin name.
        name: String,
        /// The directory searched.
        path: String,
    },
    /// The UFM client could not be built from its `UFM_*` settings.
    #[error("cannot set up the UFM client: {0}")]
    Ufm(#[from] SmError),
    /// The kubeconfig file could not be read.
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Its path.
        path: String,
        /// Why it could not be read.
        source: kube::config::KubeconfigError,
    },
    /// No Kubernetes client configuration could be found.
    #[error("cannot build the Kubernetes client configuration (in-cluster, KUBECONFIG or ~/.kube/config): {0}")]
    KubeConfig(#[from] kube::config::InferConfigError),
    /// The Kubernetes client could not be built.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The controller failed to start.
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

/// The subnet manager `DAEMON_SM_PLUGIN` names: an executable `$DAEMON_SM_PLUGIN_PATH/<name>` when there
/// is one (so a plugin mounted there overrides even `ufm` and `noop`), else the built-in of that name.
pub fn subnet_manager(config: &Config) -> Result<Arc<dyn SubnetManager>, StartupError> {
    let name = match &config.sm {
        SmSelection::Noop => "noop",
        SmSelection::Ufm(_) => "ufm",
        SmSelection::OpenSm(_) => "opensm",
        SmSelection::External(name) => name.as_str(),
    };
    if let SmSelection::Ufm(ufm) = &config.sm {
        // Plain HTTP and UFM_INSECURE_SKIP_VERIFY; the texts name no credential.
        for warning in ufm.warnings() {
            warn!("{warning}");
        }
    }
    if let Some(path) = find_plugin(&config.sm_plugin_path, name) {
        // The plugin inherits only what it needs of the daemon's environment (UFM_*, IB_PLUGIN_*, its own
        // prefix, PATH, locale, proxies; never KUBECONFIG or KUBERNETES_*), and reports its own
        // configuration errors. Calls are bounded by the host's one timeout, SubnetManager::call_timeout.
        let sm = ExecPlugin::new(ExecConfig::new(path));
        info!(plugin = %sm.path().display(), timeout_s = sm.call_timeout().as_secs(), "subnet manager: exec plugin");
        return Ok(Arc::new(sm));
    }
    Ok(match &config.sm {
        SmSelection::Noop => Arc::new(Noop),
        SmSelection::Ufm(ufm) => Arc::new(Ufm::new(ufm.clone())?),
        SmSelection::OpenSm(opensm) => {
            info!(
                file = %opensm.partitions_file.display(),
                reload = ?opensm.reload,
                "subnet manager: opensm, through its partitions file"
            );
            Arc::new(OpenSm::new(opensm.clone()))
        }
        SmSelection::External(name) => {
            return Err(StartupError::UnknownPlugin {
                name: name.clone(),
                path: config.sm_plugin_path.display().to_string(),
            });
        }
    })
}

/// The Kubernetes client: `KUBECONFIG` from `env` when set, otherwise in-cluster or `~/.kube/config`.
pub async fn kube_client(env: &EnvMap) -> Result<kube::Client, StartupError> {
    let config = match env.get("KUBECONFIG") {
        Some(path) => {
            // Like client-go, KUBECONFIG may list several files; the first one is used here.
            let first = path.split(':').next().unwrap_or(path);
            let kubeconfig = Kubeconfig::read_from(first)
                .map_err(|source| StartupError::Kubeconfig { path: first.to_owned(), source })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| StartupError::Kubeconfig { path: first.to_owned(), source })?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Starts the controller described by `config`, with clients built from `env`.
pub async fn start(config: Config, env: &EnvMap) -> Result<Controller, StartupError> {
    // One TLS provider for the Kubernetes and the UFM clients; already installed is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sm = subnet_manager(&config)?;
    let client = kube_client(env).await?;
    Ok(Controller::start(config, client, sm).await?)
}
