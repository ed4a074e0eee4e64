//! Starting and stopping the emulator: bind loopback port 0, serve HTTP/1.1 and HTTP/2 over
//! plain TCP or TLS, and on shutdown stop accepting and close every connection, hung ones
//! included.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{Scheme, UfmConfig};
use crate::control::{Shared, UfmHandle};
use crate::dispatch;
use crate::tls::{Pki, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding the loopback listener failed: {0}")]
    Bind(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("invalid service model: {0}")]
    Service(#[from] crate::service::ServiceError),
    #[error("invalid apply model: {0}")]
    Apply(#[from] crate::apply::ApplyError),
}

/// Entry point; see [`UfmEmulator::start`].
#[derive(Debug)]
pub struct UfmEmulator;

impl UfmEmulator {
    /// Binds `127.0.0.1:0`, generates TLS material if asked, and serves until the returned
    /// [`RunningUfm`] is shut down or dropped. Must be called inside a Tokio runtime.
    pub async fn start(config: UfmConfig) -> Result<RunningUfm, StartError> {
        config.service.validate()?;
        config.apply.validate()?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.map_err(StartError::Bind)?;
        let addr = listener.local_addr().map_err(StartError::Bind)?;
        let pki = match config.scheme {
            Scheme::Https => Some(Pki::generate()?),
            Scheme::Http => None,
        };
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared::new(&config, shutdown.clone()));
        let router = Router::new().fallback(dispatch::handle).with_state(Arc::clone(&shared));
        let acceptor = pki.as_ref().map(|pki| TlsAcceptor::from(Arc::clone(&pki.server_config)));
        let applier = tokio::spawn(crate::control::apply_changes(Arc::clone(&shared)));
        let server = serve(listener, router, acceptor, shutdown.clone());
        let task = tokio::spawn(async move {
            server.await;
            // The applier ends with the shutdown token; waiting for it keeps no task behind.
            let _ = applier.await;
        });
        tracing::info!(%addr, scheme = ?config.scheme, "ufm-emulator listening");
        Ok(RunningUfm {
            addr,
            scheme: config.scheme,
            ca_pem: pki.as_ref().map(|p| p.ca_pem.clone()),
            server_pem: pki.map(|p| p.server_pem),
            handle: UfmHandle::new(shared),
            shutdown,
            task: Some(task),
        })
    }
}

/// A started emulator. Dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct RunningUfm {
    addr: SocketAddr,
    scheme: Scheme,
    ca_pem: Option<String>,
    server_pem: Option<String>,
    handle: UfmHandle,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningUfm {
    /// `http://127.0.0.1:<port>` or `https://127.0.0.1:<port>`: an IPv4 literal, because the
    /// emulator listens on IPv4 loopback only and `localhost` may resolve to `::1` first.
    pub fn base_url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The CA certificate (PEM) that signed the server certificate; `None` over plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The server (leaf) certificate in PEM; `None` over plain HTTP.
    pub fn server_cert_pem(&self) -> Option<&str> {
        self.server_pem.as_deref()
    }

    pub fn handle(&self) -> UfmHandle {
        self.handle.clone()
    }

    /// Stops accepting, closes every connection (hung requests end), and waits for the
    /// server task to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
        {
            tracing::warn!(%err, "ufm-emulator server task ended abnormally");
        }
    }
}

impl Drop for RunningUfm {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);

async fn serve(listener: TcpListener, router: Router, acceptor: Option<TlsAcceptor>, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(connection(
                        stream,
                        router.clone(),
                        acceptor.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(err) => {
                    tracing::warn!(%err, "ufm-emulator accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn connection(stream: TcpStream, router: Router, acceptor: Option<TlsAcceptor>, shutdown: CancellationToken) {
    // Small JSON exchanges: Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(router);
    let builder = auto::Builder::new(TokioExecutor::new());
    let result = match acceptor {
        None => {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => r,
                () = shutdown.cancelled() => return,
            }
        }
        Some(acceptor) => {
            let tls = tokio::select! {
                r = acceptor.accept(stream) => r,
                () = shutdown.cancelled() => return,
            };
            let tls = match tls {
                Ok(tls) => tls,
                Err(err) => {
                    // Expected whenever a test client refuses the certificate.
                    tracing::debug!(%err, "ufm-emulator TLS handshake failed");
                    return;
                }
            };
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                r = conn => r,
                () = shutdown.cancelled() => return,
            }
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, "ufm-emulator connection ended with an error");
    }
}
