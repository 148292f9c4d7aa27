//! `concord daemon`: the background scheduler in the foreground, with logs on stderr, stopped
//! cleanly by Ctrl-C or SIGTERM (as systemd sends).

use concord_core::Concord;
use tracing_subscriber::EnvFilter;

pub fn run(concord: Concord) -> Result<(), String> {
    let filter = EnvFilter::try_from_env("CONCORD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the scheduler's runtime: {e}"))?;
    runtime.block_on(async move {
        let status = concord.status().map_err(|e| e.to_string())?;
        tracing::info!(
            data_dir = %concord.data_dir().display(),
            status = %status.line,
            "daemon started"
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = tokio::spawn(async move {
            let result = shutdown_signal().await;
            tracing::info!("daemon stopping");
            let _ = stop.send(());
            result
        });
        concord
            .run_scheduler(async move {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| format!("the scheduler stopped: {e}"))?;
        signal.abort();
        tracing::info!("daemon stopped");
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("cannot listen for Ctrl-C: {e}")),
        _ = term.recv() => Ok(()),
    }
}
