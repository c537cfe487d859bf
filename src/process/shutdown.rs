//! SIGTERM and Ctrl-C: stop taking work, let reconciles finish, release the Lease.

use tokio::sync::watch;
use tracing::{error, info};

/// Resolves on SIGTERM or SIGINT.
pub(super) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
    }
}

/// Whether SIGTERM or SIGINT has arrived.
#[derive(Clone)]
pub(super) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub(super) fn on_signals() -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    pub(super) fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested (`Send + Sync + 'static`, as kube's Controller wants
    /// its shutdown trigger).
    pub(super) fn requested(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            // An error means the signal task has gone, which it only does after sending.
            let _ = rx.wait_for(|requested| *requested).await;
        }
    }
}
