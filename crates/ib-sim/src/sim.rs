//! `ib-kubernetes sim`: both emulators on loopback for people and scripts, with the files a
//! controller and kubectl need written into one directory.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kube_emulator::{EmulatorConfig, KubeEmulator, RunningEmulator};
use ufm_emulator::{RunningUfm, UfmConfig, UfmEmulator};

use crate::envfile::UfmEnv;
use crate::forward::{ForwardError, Forwarder};
use crate::kubelet::{Kubelet, KubeletOptions};

/// UFM's factory-default user, which every UFM client documents.
pub const UFM_USERNAME: &str = "admin";

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub dir: PathBuf,
    /// Fixed port for the Kubernetes API; `None` picks a free one.
    pub api_port: Option<u16>,
    /// Fixed port for UFM; `None` picks a free one.
    pub ufm_port: Option<u16>,
    pub kubelet: bool,
    /// Plain HTTP for UFM instead of HTTPS with a generated CA.
    pub http: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot create {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the Kubernetes API emulator did not start: {0}")]
    Kube(#[from] kube_emulator::StartError),
    #[error("the UFM emulator did not start: {0}")]
    Ufm(#[from] ufm_emulator::StartError),
    #[error(transparent)]
    Port(#[from] ForwardError),
}

/// The running emulated cluster; dropping it stops everything abruptly, `shutdown` cleanly.
pub struct RunningSim {
    kube: RunningEmulator,
    ufm: RunningUfm,
    kubelet: Option<Kubelet>,
    /// Relays from the requested fixed ports, kept alive as long as the emulators.
    _forwarders: Vec<Forwarder>,
    api_addr: SocketAddr,
    ufm_env: UfmEnv,
    dir: PathBuf,
}

impl RunningSim {
    /// Starts both emulators (and the kubelet when asked) and writes `kubeconfig`, `ufm.env` and,
    /// for HTTPS, `ufm-ca.pem` into `options.dir`, creating it if needed.
    pub async fn start(options: SimOptions) -> Result<RunningSim, SimError> {
        std::fs::create_dir_all(&options.dir).map_err(|source| SimError::Dir { path: options.dir.clone(), source })?;
        let dir = std::fs::canonicalize(&options.dir).unwrap_or(options.dir.clone());

        let kube = KubeEmulator::start(EmulatorConfig::default()).await?;
        let password = generated_password();
        let config = if options.http { UfmConfig::http() } else { UfmConfig::https() };
        let ufm = UfmEmulator::start(config.with_credentials(UFM_USERNAME, password.clone())).await?;

        let mut forwarders = Vec::new();
        let mut expose = async |port: Option<u16>, target: SocketAddr| -> Result<SocketAddr, SimError> {
            match port {
                None => Ok(target),
                Some(port) => {
                    let forwarder = Forwarder::start(port, target).await?;
                    let addr = forwarder.addr();
                    forwarders.push(forwarder);
                    Ok(addr)
                }
            }
        };
        let api_addr = expose(options.api_port, kube.addr()).await?;
        let ufm_addr = expose(options.ufm_port, ufm.addr()).await?;

        let ufm_env = UfmEnv {
            username: UFM_USERNAME.to_owned(),
            password,
            address: ufm_addr.ip().to_string(),
            port: ufm_addr.port(),
            schema: if options.http { "http" } else { "https" },
            certificate: ufm.ca_pem().map(str::to_owned),
        };
        if let Some(pem) = ufm.ca_pem() {
            write_private(&dir.join("ufm-ca.pem"), pem)?;
        }
        write_private(&dir.join("ufm.env"), &ufm_env.render())?;
        // Last, so that a script waiting for the kubeconfig finds everything else in place.
        let kubeconfig = kube.kubeconfig().replace(&kube.url(), &format!("http://{api_addr}"));
        write_private(&dir.join("kubeconfig"), &kubeconfig)?;

        let kubelet =
            options.kubelet.then(|| Kubelet::start_with(kube.handle(), KubeletOptions { record_events: true }));
        Ok(RunningSim { kube, ufm, kubelet, _forwarders: forwarders, api_addr, ufm_env, dir })
    }

    pub fn kube(&self) -> &RunningEmulator {
        &self.kube
    }

    pub fn ufm(&self) -> &RunningUfm {
        &self.ufm
    }

    pub fn kubelet(&self) -> Option<&Kubelet> {
        self.kubelet.as_ref()
    }

    /// Where clients reach the Kubernetes API (the fixed port when one was asked for).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn ufm_env(&self) -> &UfmEnv {
        &self.ufm_env
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn ufm_env_path(&self) -> PathBuf {
        self.dir.join("ufm.env")
    }

    /// `None` over plain HTTP.
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.ufm.ca_pem().map(|_| self.dir.join("ufm-ca.pem"))
    }

    /// What to tell the user: where everything is and how to use it.
    pub fn usage(&self) -> String {
        let dir = self.dir.display();
        let env = &self.ufm_env;
        let ufm_url = format!("{}://{}:{}", env.schema, env.address, env.port);
        let cacert = self.ca_path().map(|p| format!("--cacert {} ", p.display())).unwrap_or_default();
        let kubelet = if self.kubelet.is_some() {
            "on (nodes node-01..node-16; pods are scheduled and start once their InfiniBand networks are configured)"
        } else {
            "off (pods stay Pending; pass --kubelet to simulate nodes and a scheduler)"
        };
        format!(
            "ib-kubernetes sim: emulated Kubernetes API server and UFM are running.\n\
             \n  Kubernetes API   http://{api}   kubeconfig: {dir}/kubeconfig\
             \n  UFM REST         {ufm_url}   user {user}; variables: {dir}/ufm.env{ca}\
             \n  kubelet          {kubelet}\n\
             \nTry:\
             \n  kubectl --kubeconfig {dir}/kubeconfig get pods -A\
             \n  (set -a; . {dir}/ufm.env; curl -sS {cacert}-u \"$UFM_USERNAME:$UFM_PASSWORD\" \"{ufm_url}/ufmRest/resources/pkeys?guids_data=true\")\n\
             \nRun the controller against it:\
             \n  (set -a; . {dir}/ufm.env; KUBECONFIG={dir}/kubeconfig DAEMON_SM_PLUGIN=ufm ADMIN_ADDRESS=127.0.0.1:9090 ib-kubernetes)\n\
             \nStop with Ctrl-C.",
            api = self.api_addr,
            user = env.username,
            ca = self.ca_path().map(|p| format!(", CA: {}", p.display())).unwrap_or_default(),
        )
    }

    pub async fn shutdown(self) {
        if let Some(kubelet) = self.kubelet {
            kubelet.stop();
        }
        drop(self._forwarders);
        self.kube.shutdown().await;
        self.ufm.shutdown().await;
    }
}

/// A fresh password per run: nothing on the machine should be able to guess it, and it proves that
/// clients really take it from `ufm.env`.
fn generated_password() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let (mut a, mut b) = (state.build_hasher(), state.build_hasher());
    a.write_u8(1);
    b.write_u8(2);
    format!("sim-{:016x}{:016x}", a.finish(), b.finish())
}

/// Writes `text` to `path` so that only this user can read it and nobody can redirect the write.
///
/// The text goes into a new file with a random name in the same directory, created exclusively
/// (`O_EXCL`) with mode 0600, which is then renamed over `path`. So a reader never sees half a file; a
/// file or symlink already at `path` is replaced, never written through (a symlink's target and other
/// hard links of an old file keep what they had); and there is no predictable temporary name another
/// user could plant a symlink at beforehand. `ufm.env` holds the UFM password; the kubeconfig and CA are
/// written the same way.
fn write_private(path: &Path, text: &str) -> Result<(), SimError> {
    use std::io::Write as _;
    let error = |source| SimError::Write { path: path.to_owned(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut file = builder.tempfile_in(dir).map_err(error)?;
    file.write_all(text.as_bytes()).and_then(|()| file.as_file().sync_all()).map_err(error)?;
    file.persist(path).map_err(|e| error(e.error))?;
    Ok(())
}
