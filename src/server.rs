//! Runs the service: logging, the TURN secret, the listener, the housekeeping tick, and a
//! graceful shutdown on SIGTERM/SIGINT (every socket gets `bye {reason: "restart"}` and close
//! 1012, bounded by `server.shutdown_grace`).

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat, Mode};
use crate::http::{App, PeerAddr};
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
    let filter = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .and_then(|rust_log| crate::config::log_filter(&rust_log).ok())
        .or_else(|| crate::config::log_filter(&config.logging.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
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

/// Descriptors `serve` wants beyond `server.max_connections`: the sockets still upgraded only
/// to be told `server-busy`, plus HTTP connections, the listener, logs and libraries.
const NOFILE_MARGIN: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit when the soft one cannot hold
/// `server.max_connections` sockets (the common soft default is 1024, while systemd's
/// `LimitNOFILE=` and most shells allow far more as the hard limit), and warns when even the
/// hard limit is too low: the sockets past it would fail at `accept` (EMFILE) instead of
/// getting `server-busy`.
fn raise_nofile_limit(max_connections: usize) {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
    let want = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(NOFILE_MARGIN);
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            warn!(cause = %e, "cannot read the open-files limit");
            return;
        }
    };
    if soft < want && soft < hard {
        // An unlimited hard limit is not a valid soft one (the kernel caps it at nr_open).
        let to = if hard == RLIM_INFINITY { want } else { hard };
        match setrlimit(Resource::RLIMIT_NOFILE, to, hard) {
            Ok(()) => info!(from = soft, to, "raised the open-files soft limit"),
            Err(e) => warn!(cause = %e, soft, hard, "cannot raise the open-files soft limit"),
        }
    }
    if hard < want {
        warn!(
            hard,
            want,
            "the open-files hard limit is below server.max_connections + 64; raise LimitNOFILE="
        );
    }
}

async fn serve(config: Config) -> Result<(), StartError> {
    raise_nofile_limit(config.server.max_connections);
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

/// How long a client may take to send a request's head, which is also how long an idle
/// keep-alive connection is kept (hyper runs the same timer while it waits for the next
/// request). Behind nginx a request arrives whole at once; this bounds slow-loris clients that
/// trickle headers (or never finish an upgrade request) on the listener itself. A timed-out
/// connection is closed without a response.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then finishes HTTP requests in flight
/// and closes every socket gracefully, all within `server.shutdown_grace`. Used by `serve` and
/// by tests.
///
/// The accept loop is ours (warp's own server sets no header timeout): each connection is
/// served by hyper (HTTP/1.1) with [`HEADER_READ_TIMEOUT`], the warp routes as the service, and the
/// peer address as a [`crate::http::PeerAddr`] request extension.
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
    let service = TowerToHyperService::new(warp::service(crate::http::routes::routes(app.clone())));
    // HTTP connections (until they upgrade), so that shutdown can wait for them.
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&e, &token).await;
                    continue;
                }
            },
        };
        // Signaling messages are small: send each at once.
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let with_peer = service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            service.call(req)
        });
        let token = token.clone();
        connections.spawn(async move {
            // HTTP/1.1 only (nginx speaks nothing else to us), so the header timer starts at
            // accept: no protocol sniffing that waits for a first byte without a deadline.
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), with_peer)
                .with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = token.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // Timeouts, resets and malformed requests: the client's problem, not ours.
                debug!(cause = %e, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    // From here on, HTTP requests in flight and socket goodbyes share one `shutdown_grace`:
    // a client that does not cooperate (say, a request whose headers never end) cannot hold
    // the process past it.
    let deadline = Instant::now() + grace;
    connections.close();
    if tokio::time::timeout_at(deadline, connections.wait())
        .await
        .is_err()
    {
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

/// After a failed `accept`: a connection that died in the backlog is nobody's problem; running
/// out of descriptors (EMFILE/ENFILE) or memory is logged and backed off for a second (or
/// until shutdown), so the loop does not spin while sockets close.
async fn accept_failed(e: &std::io::Error, token: &tokio_util::sync::CancellationToken) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    warn!(cause = %e, "accept failed; pausing for a second");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
        () = token.cancelled() => {}
    }
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
