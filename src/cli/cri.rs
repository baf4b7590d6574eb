//! `wasmhook cri`: the CRI proxy in front of containerd (see [`crate::cri`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::error::{CliError, CliResult};
use super::hook::{CacheArgs, LimitArgs, PoolArgs};
use crate::cri::{socket_path, CriProxy, CriProxyConfig, DEFAULT_LISTEN, DEFAULT_RUNTIME_ENDPOINT};
use crate::manifest::parse_go_duration;

#[derive(Args, Debug)]
// The CRI caps stdout and stderr at 16 MiB each; `wasmhook run` keeps 1 MiB per hook.
#[command(mut_arg("max_output", |a| a.default_value("16Mi")))]
pub struct CriArgs {
    /// The socket the kubelet connects to (`--container-runtime-endpoint`); `unix://` optional.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// The runtime's socket (containerd); `unix://` optional.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_RUNTIME_ENDPOINT)]
    pub runtime_endpoint: String,
    /// Serve Prometheus metrics at `http://HOST:PORT/metrics`.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Bound of compiling a module the node has not seen yet (not charged to the call).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration, default_value = "60s")]
    pub compile_timeout: Duration,
    #[command(flatten)]
    pub limits: LimitArgs,
}

pub fn cri(args: CriArgs, cache: &CacheArgs) -> CliResult {
    let limits = args.limits.limits();
    let rt = args.pool.runtime(cache, limits.clone())?;
    let config = CriProxyConfig {
        listen: socket_path(&args.listen),
        runtime_endpoint: socket_path(&args.runtime_endpoint),
        defaults: limits.hook_settings(),
        compile_timeout: args.compile_timeout,
        max_output: limits.max_output,
        metrics_addr: args.metrics_addr,
        ..CriProxyConfig::default()
    };
    let inherited = inherited_socket()?;
    super::block_on(true, async move {
        let listen = config.listen.clone();
        let upstream = config.runtime_endpoint.clone();
        let activated = inherited.is_some();
        // Before the proxy serves: see `StopSignals`.
        let signals = super::StopSignals::install();
        let proxy = match inherited {
            Some(l) => CriProxy::from_listener(config, rt, l).await,
            None => CriProxy::bind(config, rt).await,
        }
        .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", listen.display())))?;
        tracing::info!(
            listen = %listen.display(),
            socket_activation = activated,
            runtime = %upstream.display(),
            metrics = ?proxy.metrics_addr(),
            "wasmhook cri: relaying to the runtime; wasm ExecSync runs here"
        );
        proxy
            .serve(async move {
                match signals {
                    Some(mut s) => s.recv().await,
                    // Without signal handlers, run until killed.
                    None => std::future::pending().await,
                }
            })
            .await;
        Ok(ExitCode::SUCCESS)
    })?
}

/// The socket systemd passed to us (socket activation, as `sd_listen_fds` reads it): fd 3
/// when `LISTEN_PID` is this process and `LISTEN_FDS` is 1. `None` when not activated.
fn inherited_socket() -> Result<Option<std::os::unix::net::UnixListener>, CliError> {
    use std::os::fd::{BorrowedFd, FromRawFd};
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if !for_us {
        return Ok(None);
    }
    let n = std::env::var("LISTEN_FDS").unwrap_or_default();
    if n != "1" {
        return Err(CliError::Usage(format!(
            "socket activation passed {n:?} sockets (LISTEN_FDS); wasmhook cri takes exactly one"
        )));
    }
    const SD_LISTEN_FDS_START: i32 = 3;
    // SAFETY: systemd's protocol hands fd 3 to this process (LISTEN_PID is ours); it stays
    // open for the whole process, and is checked to be a socket before it is taken.
    let fd = unsafe { BorrowedFd::borrow_raw(SD_LISTEN_FDS_START) };
    match rustix::fs::fstat(fd) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket => {}
        _ => {
            return Err(CliError::Usage(
                "socket activation: fd 3 is not a socket".into(),
            ))
        }
    }
    // SAFETY: as above; from here on the listener owns fd 3.
    Ok(Some(unsafe {
        std::os::unix::net::UnixListener::from_raw_fd(SD_LISTEN_FDS_START)
    }))
}
