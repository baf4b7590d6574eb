//! The proxy, in-process.

use super::*;

/// A `wasmhook cri` proxy served in-process on `config.listen` (wasm runtime without a disk
/// cache), until [`RunningProxy::stop`].
pub struct RunningProxy {
    pub socket: PathBuf,
    /// The bound `/metrics` address, when `config.metrics_addr` asked for one.
    pub metrics: Option<std::net::SocketAddr>,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<()>,
}

impl RunningProxy {
    pub async fn start(config: wasmhook::cri::CriProxyConfig) -> RunningProxy {
        let runtime = wasmhook::wasm::HookRuntime::new(wasmhook::wasm::RuntimeConfig {
            cache_dir: None,
            ..Default::default()
        })
        .expect("a wasm runtime");
        let socket = config.listen.clone();
        let proxy = wasmhook::cri::CriProxy::bind(config, runtime)
            .await
            .unwrap_or_else(|e| panic!("bind the proxy on {}: {e}", socket.display()));
        let metrics = proxy.metrics_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(proxy.serve(async move {
            let _ = stopped.await;
        }));
        RunningProxy {
            socket,
            metrics,
            stop,
            serving,
        }
    }

    /// A client on the proxy's socket.
    pub fn client(&self) -> Cri {
        Cri::new(&self.socket)
    }

    /// Shut the proxy down and wait (at most 15 s) until it has; `Err` says what went wrong
    /// (it did not end, or left its socket behind).
    pub async fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(15), self.serving).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("proxy serve task: {e}")),
            Err(_) => return Err("the proxy did not shut down within 15 s".into()),
        }
        if self.socket.exists() {
            return Err(format!("{} left after shutdown", self.socket.display()));
        }
        Ok(())
    }
}
