//! A loopback TCP forwarder. The emulators always bind port 0 (their crates offer no port option);
//! when a user asks for a fixed port, this listens there and relays every connection byte for byte,
//! TLS included, so clients see exactly the emulator behind it.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
}

/// Relays `127.0.0.1:<port>` to a target until dropped.
#[derive(Debug)]
pub struct Forwarder {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Forwarder {
    /// Listens on `127.0.0.1:port` (0 picks a free port) and relays to `target`.
    pub async fn start(port: u16, target: SocketAddr) -> Result<Forwarder, ForwardError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| ForwardError::Bind { port, source })?;
        let addr = listener.local_addr().map_err(|source| ForwardError::Bind { port, source })?;
        let task = tokio::spawn(relay_all(listener, target));
        Ok(Forwarder { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open relay.
        self.task.abort();
    }
}

async fn relay_all(listener: TcpListener, target: SocketAddr) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    relays.spawn(relay(client, target));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "forwarder accept failed");
                    // Out of descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr) {
    let _ = client.set_nodelay(true);
    let mut upstream = match TcpStream::connect(target).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(error = %e, %target, "forwarder cannot reach the emulator");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
