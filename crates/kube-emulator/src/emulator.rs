//! Starting and stopping the emulator, and pointing clients at it.

use crate::config::EmulatorConfig;
use crate::control::{EmulatorHandle, Shared};
use crate::server;
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long shutdown waits for in-flight requests before aborting the server task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding the loopback listener failed.
    #[error("binding 127.0.0.1:0: {0}")]
    Bind(#[source] std::io::Error),
    /// The bound address could not be read back.
    #[error("reading the bound address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// `start` was called outside a Tokio runtime.
    #[error("the emulator must be started inside a Tokio runtime")]
    NoRuntime,
}

/// Entry point: `KubeEmulator::start(EmulatorConfig::default()).await?`.
pub struct KubeEmulator;

impl KubeEmulator {
    /// Binds `127.0.0.1:0` and serves plain HTTP/1.1 until shut down.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, StartError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(StartError::Bind)?;
        let addr = listener.local_addr().map_err(StartError::LocalAddr)?;
        let shared = Arc::new(Shared::new(config, runtime));
        let app = server::router(Arc::clone(&shared));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        // The apiserver (Go's net/http) sets TCP_NODELAY on every connection; without it a watch event
        // written while the previous one is unacknowledged waits out the peer's delayed ACK (~40 ms).
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "kube emulator server stopped with an error");
            }
        });
        tracing::debug!(%addr, "kube emulator listening");
        Ok(RunningEmulator { addr, handle: EmulatorHandle { shared }, stop: Some(stop_tx), task: Some(task) })
    }
}

/// A running emulator. Dropping it stops the server (abruptly); `shutdown` stops it cleanly.
pub struct RunningEmulator {
    addr: SocketAddr,
    handle: EmulatorHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for `kube::Config::new(url.parse()?)`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The in-process control handle.
    pub fn handle(&self) -> EmulatorHandle {
        self.handle.clone()
    }

    /// A kubeconfig (YAML) whose current context points at the emulator, namespace `default`,
    /// with a dummy bearer token (accepted and ignored).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: kube-emulator\n  cluster:\n    server: {url}\n\
             contexts:\n\
             - name: kube-emulator\n  context:\n    cluster: kube-emulator\n    user: kube-emulator\n    namespace: default\n\
             current-context: kube-emulator\n\
             users:\n\
             - name: kube-emulator\n  user:\n    token: kube-emulator-token\n\
             preferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes `kubeconfig()` to `path`, for kubectl (`--kubeconfig`) and `kube::Config`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Ends watch streams, releases hung requests, stops accepting connections and waits (up to
    /// a few seconds) for in-flight requests.
    pub async fn shutdown(mut self) {
        self.handle.drop_watches();
        self.handle.release_hung();
        self.handle.clear_faults();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.handle.drop_watches();
            task.abort();
        }
    }
}
