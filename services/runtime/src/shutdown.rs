//! One shutdown signal per process, fanned out to every server, controller and stream.

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A cloneable handle on the process's shutdown: triggered by SIGTERM or Ctrl-C, or by hand in tests.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown that fires on SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C).
    pub fn on_signals() -> std::io::Result<Self> {
        let shutdown = Self::new();
        #[cfg(unix)]
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let terminated = terminate.recv();
            #[cfg(not(unix))]
            let terminated = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
                _ = terminated => tracing::info!(signal = "SIGTERM", "shutting down"),
            }
            trigger.trigger();
        });
        Ok(shutdown)
    }

    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when shutdown begins.
    pub fn wait(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }
}
