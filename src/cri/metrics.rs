//! Prometheus metrics of the proxy, served as text on `--metrics-addr` at `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `wasmhook_cri_calls_total` | counter | `service`, `method`: every call the kubelet made |
//! | `wasmhook_cri_in_flight_calls` | gauge | calls being relayed or answered now |
//! | `wasmhook_cri_wasm_exec_total` | counter | `outcome`: `ok`, `exit`, `trap`, `timeout`, `limit`, `cancelled`, `error`, `relayed-native` |
//! | `wasmhook_cri_wasm_exec_duration_seconds` | histogram | wasm `ExecSync` calls, end to end |
//! | `wasmhook_cri_wasm_in_flight` | gauge | wasm calls running now |
//! | `wasmhook_cri_cached_containers` | gauge | containers with a cached view |
//! | `wasmhook_cri_runtime_lookups_total` | counter | context lookups the proxy made to the runtime (`ContainerStatus`, `PodSandboxStatus`); a warm wasm call makes none |

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::wasm::ExecStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// How a wasm `ExecSync` ended, for `wasmhook_cri_wasm_exec_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Exit,
    Trap,
    Timeout,
    Limit,
    Cancelled,
    Error,
    /// The command was not wasm: the call went to the runtime.
    RelayedNative,
}

impl Outcome {
    pub fn of(status: &ExecStatus) -> Outcome {
        match status {
            ExecStatus::Success => Outcome::Ok,
            ExecStatus::Exited(_) | ExecStatus::Failed(_) => Outcome::Exit,
            ExecStatus::Trap(_) => Outcome::Trap,
            ExecStatus::TimedOut(_) => Outcome::Timeout,
            ExecStatus::FuelExhausted(_)
            | ExecStatus::MemoryLimit(_)
            | ExecStatus::MemoryTooSmall { .. }
            | ExecStatus::TableLimit(_) => Outcome::Limit,
            ExecStatus::Cancelled => Outcome::Cancelled,
            ExecStatus::Error(_) => Outcome::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Exit => "exit",
            Outcome::Trap => "trap",
            Outcome::Timeout => "timeout",
            Outcome::Limit => "limit",
            Outcome::Cancelled => "cancelled",
            Outcome::Error => "error",
            Outcome::RelayedNative => "relayed-native",
        }
    }
}

/// The proxy's metrics. Cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    in_flight: Gauge,
    wasm_exec: Family<OutcomeLabels, Counter>,
    wasm_duration: Histogram,
    wasm_in_flight: Gauge,
    cached_containers: Gauge,
    lookups: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wasmhook_cri");
        let calls = Family::<CallLabels, Counter>::default();
        let in_flight = Gauge::default();
        let wasm_exec = Family::<OutcomeLabels, Counter>::default();
        // 10 µs .. ~40 s: wasm calls take microseconds, hooks may take their whole timeout.
        let wasm_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(10e-6, 4.0, 12),
        );
        let wasm_in_flight = Gauge::default();
        let cached_containers = Gauge::default();
        let lookups = Counter::default();
        registry.register(
            "runtime_lookups",
            "Context lookups the proxy made to the runtime",
            lookups.clone(),
        );
        registry.register("calls", "CRI calls received, by method", calls.clone());
        registry.register(
            "in_flight_calls",
            "CRI calls in progress",
            in_flight.clone(),
        );
        registry.register(
            "wasm_exec",
            "ExecSync calls whose command was a wasm module (or was not: relayed-native), by outcome",
            wasm_exec.clone(),
        );
        registry.register(
            "wasm_exec_duration_seconds",
            "Duration of wasm ExecSync calls, end to end",
            wasm_duration.clone(),
        );
        registry.register(
            "wasm_in_flight",
            "wasm calls running",
            wasm_in_flight.clone(),
        );
        registry.register(
            "cached_containers",
            "Containers whose context is cached",
            cached_containers.clone(),
        );
        Metrics {
            registry,
            calls,
            in_flight,
            wasm_exec,
            wasm_duration,
            wasm_in_flight,
            cached_containers,
            lookups,
        }
    }

    /// One call the proxy made to the runtime on its own behalf.
    pub fn lookup(&self) {
        self.lookups.inc();
    }

    /// Count a call by its `:path` (`/runtime.v1.RuntimeService/Version`). Paths that are
    /// not `/<service>/<method>` count as `other`, so a misbehaving client cannot grow the
    /// label set without bound through odd paths.
    pub fn call(&self, path: &str) -> InFlight {
        let (service, method) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
            Some((s, m)) if plausible(s) && plausible(m) => (s, m),
            _ => ("other", "other"),
        };
        self.calls
            .get_or_create(&CallLabels {
                service: service.into(),
                method: method.into(),
            })
            .inc();
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub fn wasm_started(&self) -> InFlight {
        self.wasm_in_flight.inc();
        InFlight(self.wasm_in_flight.clone())
    }

    pub fn wasm_done(&self, outcome: Outcome, seconds: f64) {
        self.exec_outcome(outcome);
        self.wasm_duration.observe(seconds);
    }

    pub fn exec_outcome(&self, outcome: Outcome) {
        self.wasm_exec
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().into(),
            })
            .inc();
    }

    pub fn set_cached_containers(&self, n: usize) {
        self.cached_containers.set(n as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

fn plausible(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

/// Decrements its gauge when dropped: a call is in flight exactly as long as it lives.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serve `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let metrics = metrics.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(Bytes::from(metrics.render())))
                    } else {
                        hyper::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"not found: try /metrics\n")))
                    };
                    Ok::<_, std::convert::Infallible>(resp.expect("static response parts"))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Bind the metrics listener (before serving, so a bad address fails at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_calls_outcomes_and_gauges() {
        let m = Metrics::new();
        {
            let _a = m.call("/runtime.v1.RuntimeService/Version");
            let _b = m.call("/bogus path/%%");
            assert!(m.render().contains("wasmhook_cri_in_flight_calls 2"));
        }
        m.wasm_done(Outcome::of(&ExecStatus::Exited(3)), 0.001);
        m.exec_outcome(Outcome::RelayedNative);
        let text = m.render();
        assert!(text.contains(
            r#"wasmhook_cri_calls_total{service="runtime.v1.RuntimeService",method="Version"} 1"#
        ), "{text}");
        assert!(text.contains(r#"wasmhook_cri_calls_total{service="other",method="other"} 1"#));
        assert!(text.contains("wasmhook_cri_in_flight_calls 0"));
        assert!(text.contains(r#"wasmhook_cri_wasm_exec_total{outcome="exit"} 1"#));
        assert!(text.contains(r#"wasmhook_cri_wasm_exec_total{outcome="relayed-native"} 1"#));
        assert!(text.contains("wasmhook_cri_wasm_exec_duration_seconds_count 1"));
    }
}
