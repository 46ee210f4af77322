//! Runs the service: logging, the TURN secret, the listener, the housekeeping tick, and a
//! graceful shutdown on SIGTERM/SIGINT (every socket gets `bye {reason: "restart"}` and close
//! 1012, bounded by `server.shutdown_grace`).

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat, Mode};
use crate::http::App;
use crate::turn::TurnSecret;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secret(#[from] crate::turn::SecretError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Entry for `alisay serve`: returns the process exit code.
pub fn main(config: Config) -> ExitCode {
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("alisay: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(cause = %e, "cannot start");
            eprintln!("alisay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.logging.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match config.logging.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn serve(config: Config) -> Result<(), StartError> {
    let secret = config
        .turn
        .secret_file
        .as_deref()
        .map(TurnSecret::from_file)
        .transpose()?;
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    if config.mode == Mode::Development {
        warn!("development mode: not for a public host");
    }
    info!(%local, "listening");
    // Also for the person at the terminal: where to point two browser tabs.
    println!("Alisay Call is serving on http://{local}/  (stop with Ctrl-C)");
    let app = App::new(config, secret);
    run(listener, app, shutdown_signal()).await;
    Ok(())
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes HTTP requests in flight
/// and closes every socket gracefully, all within `server.shutdown_grace`. Used by `serve` and
/// by tests.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let grace = app.config.server.shutdown_grace;
    let token = app.shutdown.clone();
    tokio::spawn({
        let token = token.clone();
        async move {
            shutdown.await;
            token.cancel();
        }
    });
    let ticker = tokio::spawn(housekeeping(app.clone()));
    let routes = crate::http::routes::routes(app.clone());
    let http = warp::serve(routes)
        .incoming(listener)
        .graceful({
            let token = token.clone();
            async move { token.cancelled().await }
        })
        .run();
    tokio::pin!(http);
    let http_done = tokio::select! {
        () = &mut http => true,
        () = token.cancelled() => false,
    };
    // From here on, HTTP requests in flight and socket goodbyes share one `shutdown_grace`:
    // a client that does not cooperate (say, a request whose headers never end) cannot hold
    // the process past it.
    let deadline = Instant::now() + grace;
    if !http_done && tokio::time::timeout_at(deadline, &mut http).await.is_err() {
        warn!("shutdown grace elapsed with HTTP connections still open");
    }
    app.tasks.close();
    if tokio::time::timeout_at(deadline, app.tasks.wait())
        .await
        .is_err()
    {
        warn!(
            open = app.tasks.len(),
            "shutdown grace elapsed with sockets still open"
        );
    }
    ticker.abort();
    info!("stopped");
}

/// Once a second: expire reservations and idle rooms.
async fn housekeeping(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let mut sb = app.switchboard();
        let outputs = sb.hub.tick(Instant::now());
        sb.dispatch(outputs);
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
}
