//! The client: one HTTP/2 connection on a runtime's (or the proxy's) socket, calls made as
//! the kubelet makes them.

use super::*;

/// The kubelet's `runtimeRequestTimeout` (its default), sent as every call's `grpc-timeout`
/// and added to a probe's own timeout.
pub const RUNTIME_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the tests wait for any one reply before giving up (a hung runtime or proxy
/// fails the test instead of hanging it).
pub const CLIENT_BOUND: Duration = Duration::from_secs(60);

/// A CRI client on one socket (containerd's or the proxy's).
pub struct Cri {
    up: Upstream,
}

/// A whole reply as it came over the wire, for byte-for-byte comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct RawReply {
    pub status: http::StatusCode,
    pub headers: HeaderMap,
    /// The body as sent: gRPC-framed messages.
    pub body: Bytes,
    pub trailers: HeaderMap,
}

impl RawReply {
    /// `grpc-status` from the trailers, or from the headers of a trailers-only reply.
    pub fn grpc_status(&self) -> Option<String> {
        self.trailers
            .get("grpc-status")
            .or_else(|| self.headers.get("grpc-status"))
            .map(|v| v.to_str().unwrap_or("?").to_string())
    }

    /// `grpc-message`, percent-decoded.
    pub fn grpc_message(&self) -> Option<String> {
        self.trailers
            .get("grpc-message")
            .or_else(|| self.headers.get("grpc-message"))
            .map(|v| grpc::percent_decode(v.as_bytes()))
    }

    /// The headers and trailers minus `date` (which a server may stamp on its own).
    pub fn without_date(&self) -> RawReply {
        let mut r = self.clone();
        r.headers.remove(http::header::DATE);
        r.trailers.remove(http::header::DATE);
        r
    }
}

/// Bound `fut` by [`CLIENT_BOUND`] (or `bound`), so a test never hangs on a reply.
async fn bounded<T>(
    bound: Duration,
    fut: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(bound, fut).await {
        Ok(r) => r,
        Err(_) => Err(Status::new(
            Code::Internal,
            format!("test client: no reply within {bound:?}"),
        )),
    }
}

impl Cri {
    pub fn new(socket: impl Into<PathBuf>) -> Cri {
        Cri {
            up: Upstream::new(socket),
        }
    }

    pub fn socket(&self) -> &Path {
        self.up.path()
    }

    /// A unary call to `path` (a full method path, or a method of the RuntimeService),
    /// with the kubelet's `grpc-timeout`.
    pub async fn call<Resp: prost::Message + Default>(
        &self,
        path: &str,
        req: &impl prost::Message,
    ) -> Result<Resp, Status> {
        self.call_with(path, req, Some(RUNTIME_REQUEST_TIMEOUT), CLIENT_BOUND)
            .await
    }

    /// A unary call with a given `grpc-timeout` header (`None`: none, as for a hook's
    /// `ExecSync`) and local bound.
    pub async fn call_with<Resp: prost::Message + Default>(
        &self,
        path: &str,
        req: &impl prost::Message,
        grpc_timeout: Option<Duration>,
        bound: Duration,
    ) -> Result<Resp, Status> {
        let path = full_path(path);
        bounded(bound, async {
            let resp = self
                .up
                .send(grpc::unary_request(&path, req, grpc_timeout))
                .await?;
            grpc::read_unary(resp).await
        })
        .await
    }

    /// Send `message` (unframed protobuf bytes) to `path` and return the whole reply.
    pub async fn raw(&self, path: &str, message: &[u8]) -> Result<RawReply, Status> {
        let path = full_path(path);
        bounded(CLIENT_BOUND, async {
            let req = http::Request::post(format!("http://localhost{path}"))
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header(http::header::TE, "trailers")
                .body(grpc::full_body(grpc::frame(message)))
                .unwrap();
            let resp = self.up.send(req).await?;
            let (parts, body) = resp.into_parts();
            let collected = body
                .collect()
                .await
                .map_err(|e| Status::new(Code::Unavailable, format!("reading the reply: {e}")))?;
            let trailers = collected.trailers().cloned().unwrap_or_default();
            Ok(RawReply {
                status: parts.status,
                headers: parts.headers,
                body: collected.to_bytes(),
                trailers,
            })
        })
        .await
    }

    pub async fn version(&self) -> Result<VersionResponse, Status> {
        self.call(
            "Version",
            &VersionRequest {
                version: "v1".into(),
            },
        )
        .await
    }

    pub async fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> Result<String, Status> {
        let r: RunPodSandboxResponse = self
            .call(
                "RunPodSandbox",
                &RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                },
            )
            .await?;
        Ok(r.pod_sandbox_id)
    }

    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let _: Empty = self
            .call(
                "StopPodSandbox",
                &PodSandboxIdRequest {
                    pod_sandbox_id: id.into(),
                },
            )
            .await?;
        Ok(())
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let _: Empty = self
            .call(
                "RemovePodSandbox",
                &PodSandboxIdRequest {
                    pod_sandbox_id: id.into(),
                },
            )
            .await?;
        Ok(())
    }

    pub async fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatusResponse, Status> {
        self.call(
            "PodSandboxStatus",
            &PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            },
        )
        .await
    }

    pub async fn list_pod_sandbox(&self) -> Result<Vec<PodSandbox>, Status> {
        let r: ListPodSandboxResponse = self
            .call("ListPodSandbox", &ListPodSandboxRequest { filter: None })
            .await?;
        Ok(r.items)
    }

    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> Result<String, Status> {
        let r: ContainerIdMessage = self
            .call(
                "CreateContainer",
                &CreateContainerRequest {
                    pod_sandbox_id: pod_sandbox_id.into(),
                    config: Some(config.clone()),
                    sandbox_config: Some(sandbox_config.clone()),
                },
            )
            .await?;
        Ok(r.container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), Status> {
        let _: Empty = self
            .call(
                "StartContainer",
                &ContainerIdMessage {
                    container_id: id.into(),
                },
            )
            .await?;
        Ok(())
    }

    /// `timeout`: seconds between SIGTERM and SIGKILL (0: SIGKILL at once).
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let _: Empty = self
            .call(
                "StopContainer",
                &StopContainerRequest {
                    container_id: id.into(),
                    timeout,
                },
            )
            .await?;
        Ok(())
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), Status> {
        let _: Empty = self
            .call(
                "RemoveContainer",
                &ContainerIdMessage {
                    container_id: id.into(),
                },
            )
            .await?;
        Ok(())
    }

    pub async fn list_containers(
        &self,
        filter: Option<ContainerFilter>,
    ) -> Result<Vec<Container>, Status> {
        let r: ListContainersResponse = self
            .call("ListContainers", &ListContainersRequest { filter })
            .await?;
        Ok(r.containers)
    }

    pub async fn container_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<ContainerStatusResponse, Status> {
        self.call(
            "ContainerStatus",
            &ContainerStatusRequest {
                container_id: id.into(),
                verbose,
            },
        )
        .await
    }

    pub async fn image_status(&self, image: &str) -> Result<ImageStatusResponse, Status> {
        self.call(
            &format!("{IMAGE}ImageStatus"),
            &ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                verbose: false,
            },
        )
        .await
    }

    /// `ExecSync` as the kubelet makes it: a hook (`timeout` 0) with no deadline on the
    /// call, a probe (`timeout` ≥ 1 s) with `timeout` + `runtimeRequestTimeout`.
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<ExecSyncResponse, Status> {
        let req = exec_sync_request(container_id, cmd, timeout);
        let grpc_timeout =
            (timeout > 0).then(|| Duration::from_secs(timeout as u64) + RUNTIME_REQUEST_TIMEOUT);
        let bound = CLIENT_BOUND + Duration::from_secs(timeout.max(0) as u64);
        self.call_with("ExecSync", &req, grpc_timeout, bound).await
    }
}

pub fn exec_sync_request(container_id: &str, cmd: &[&str], timeout: i64) -> ExecSyncRequest {
    ExecSyncRequest {
        container_id: container_id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    }
}

fn full_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{RUNTIME}{path}")
    }
}

/// Replace every run of 64 hex digits (containerd's exec and container ids, which differ
/// from call to call) with `<id>`, so two runtimes' error texts compare.
pub fn normalize_ids(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let run = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if run >= 64 {
            out.push_str("<id>");
            i += run;
        } else if run > 0 {
            out.push_str(&s[i..i + run]);
            i += run;
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// containerd (Go protobuf) writes map entries in random order, so two replies to the same
/// call can differ in their bytes. Two gRPC bodies are "the same up to field order" when
/// they frame the same number of bytes and their messages have the same fields, compared
/// recursively as multisets (a length-delimited value that parses as a message is compared
/// as one, anything else as bytes).
pub fn same_up_to_field_order(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() < 5 || a[..5] != b[..5] {
        return a == b;
    }
    match (canonical_message(&a[5..]), canonical_message(&b[5..])) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A canonical form of a protobuf message: its fields sorted, nested messages canonical.
/// `None` when `b` is not a well-formed message.
fn canonical_message(b: &[u8]) -> Option<Vec<u8>> {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (key, n) = read_varint(&b[i..])?;
        if key >> 3 == 0 {
            return None;
        }
        let mut entry = b[i..i + n].to_vec();
        i += n;
        match key & 7 {
            0 => {
                let (_, n) = read_varint(&b[i..])?;
                entry.extend_from_slice(&b[i..i + n]);
                i += n;
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                entry.extend_from_slice(b.get(i..i + n)?);
                i += n;
            }
            2 => {
                let (len, n) = read_varint(&b[i..])?;
                i += n;
                let v = b.get(i..i.checked_add(len as usize)?)?;
                i += v.len();
                match canonical_message(v).filter(|_| !v.is_empty()) {
                    Some(c) => {
                        entry.push(b'm');
                        entry.extend_from_slice(&(c.len() as u64).to_le_bytes());
                        entry.extend_from_slice(&c);
                    }
                    None => {
                        entry.push(b'b');
                        entry.extend_from_slice(&(v.len() as u64).to_le_bytes());
                        entry.extend_from_slice(v);
                    }
                }
            }
            _ => return None,
        }
        fields.push(entry);
    }
    fields.sort();
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(&(f.len() as u64).to_le_bytes());
        out.extend_from_slice(&f);
    }
    Some(out)
}
