//! A small CRI client for the tests, driving a runtime (containerd, or the proxy in front of
//! it) the way the kubelet does: the messages are hand-written prost structs holding only
//! the fields the tests use, with the field numbers of kubernetes/cri-api
//! `pkg/apis/runtime/v1/api.proto` (791729b); the transport is the crate's own
//! [`Upstream`] (HTTP/2 over the unix socket).
//!
//! Also: the pod the scenarios run in ([`run_busybox_pod`]), and the wasm hooks shipped in
//! the test image ([`hooks`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use wasmhook::cri::upstream::Upstream;
use wasmhook::grpc::{self, Code, Status};

use super::containerd::{Containerd, BUSYBOX};

pub const RUNTIME: &str = "/runtime.v1.RuntimeService/";
pub const IMAGE: &str = "/runtime.v1.ImageService/";

// NamespaceMode
pub const POD: i32 = 0;
pub const CONTAINER: i32 = 1;
pub const NODE: i32 = 2;
// ContainerState
pub const CONTAINER_CREATED: i32 = 0;
pub const CONTAINER_RUNNING: i32 = 1;
pub const CONTAINER_EXITED: i32 = 2;
// PodSandboxState
pub const SANDBOX_READY: i32 = 0;

// ---------------------------------------------------------------------------------------
// Messages (field numbers from api.proto; enums as int32, which encode the same)

#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionRequest {
    #[prost(string, tag = "1")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionResponse {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    #[prost(string, tag = "4")]
    pub runtime_api_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mount {
    #[prost(string, tag = "1")]
    pub container_path: String,
    #[prost(string, tag = "2")]
    pub host_path: String,
    #[prost(bool, tag = "3")]
    pub readonly: bool,
    #[prost(bool, tag = "4")]
    pub selinux_relabel: bool,
    #[prost(int32, tag = "5")]
    pub propagation: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceOption {
    #[prost(int32, tag = "1")]
    pub network: i32,
    #[prost(int32, tag = "2")]
    pub pid: i32,
    #[prost(int32, tag = "3")]
    pub ipc: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSandboxSecurityContext {
    #[prost(message, optional, tag = "1")]
    pub namespace_options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandboxConfig {
    #[prost(string, tag = "1")]
    pub cgroup_parent: String,
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxSandboxSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(string, tag = "2")]
    pub hostname: String,
    #[prost(string, tag = "3")]
    pub log_directory: String,
    #[prost(btree_map = "string, string", tag = "6")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "7")]
    pub annotations: BTreeMap<String, String>,
    #[prost(message, optional, tag = "8")]
    pub linux: Option<LinuxPodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    pub config: Option<PodSandboxConfig>,
    #[prost(string, tag = "2")]
    pub runtime_handler: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxResponse {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

/// `StopPodSandboxRequest`, `RemovePodSandboxRequest` (and `PodSandboxStatusRequest`
/// without verbose): one id in field 1.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxIdRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

/// Every empty response (`StopPodSandboxResponse`, `StartContainerResponse`, ...).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(int64, tag = "4")]
    pub created_at: i64,
    #[prost(btree_map = "string, string", tag = "7")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "8")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<PodSandboxStatus>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub info: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxFilter {
    #[prost(string, tag = "1")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    pub filter: Option<PodSandboxFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandbox {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(int64, tag = "4")]
    pub created_at: i64,
    #[prost(btree_map = "string, string", tag = "5")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "6")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxResponse {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    #[prost(string, tag = "1")]
    pub image: String,
    #[prost(btree_map = "string, string", tag = "2")]
    pub annotations: BTreeMap<String, String>,
}

/// `value` is `string` up to cri-api v0.36 and `bytes` after: the same wire form.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "2")]
    pub image: Option<ImageSpec>,
    #[prost(string, repeated, tag = "3")]
    pub command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    #[prost(string, tag = "5")]
    pub working_dir: String,
    #[prost(message, repeated, tag = "6")]
    pub envs: Vec<KeyValue>,
    #[prost(message, repeated, tag = "7")]
    pub mounts: Vec<Mount>,
    #[prost(btree_map = "string, string", tag = "9")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "10")]
    pub annotations: BTreeMap<String, String>,
    #[prost(string, tag = "11")]
    pub log_path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    pub config: Option<ContainerConfig>,
    #[prost(message, optional, tag = "3")]
    pub sandbox_config: Option<PodSandboxConfig>,
}

/// `CreateContainerResponse`, and the id-only requests `StartContainerRequest`,
/// `RemoveContainerRequest`: one container id in field 1.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerIdMessage {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StopContainerRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(int64, tag = "2")]
    pub timeout: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerFilter {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "3")]
    pub pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListContainersRequest {
    #[prost(message, optional, tag = "1")]
    pub filter: Option<ContainerFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Container {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "4")]
    pub image: Option<ImageSpec>,
    #[prost(string, tag = "5")]
    pub image_ref: String,
    #[prost(int32, tag = "6")]
    pub state: i32,
    #[prost(int64, tag = "7")]
    pub created_at: i64,
    #[prost(btree_map = "string, string", tag = "8")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "9")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<Container>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(int64, tag = "4")]
    pub created_at: i64,
    #[prost(int64, tag = "5")]
    pub started_at: i64,
    #[prost(int64, tag = "6")]
    pub finished_at: i64,
    #[prost(int32, tag = "7")]
    pub exit_code: i32,
    #[prost(message, optional, tag = "8")]
    pub image: Option<ImageSpec>,
    #[prost(string, tag = "9")]
    pub image_ref: String,
    #[prost(string, tag = "10")]
    pub reason: String,
    #[prost(string, tag = "11")]
    pub message: String,
    #[prost(btree_map = "string, string", tag = "12")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "13")]
    pub annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "14")]
    pub mounts: Vec<Mount>,
    #[prost(string, tag = "15")]
    pub log_path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<ContainerStatus>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub info: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecSyncRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, repeated, tag = "2")]
    pub cmd: Vec<String>,
    #[prost(int64, tag = "3")]
    pub timeout: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct ExecSyncResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub stdout: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub stderr: Vec<u8>,
    #[prost(int32, tag = "3")]
    pub exit_code: i32,
}

/// The streams as text, so that failure messages read.
impl std::fmt::Debug for ExecSyncResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSyncResponse")
            .field("exit_code", &self.exit_code)
            .field("stdout", &self.stdout())
            .field("stderr", &self.stderr())
            .finish()
    }
}

impl ExecSyncResponse {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageStatusRequest {
    #[prost(message, optional, tag = "1")]
    pub image: Option<ImageSpec>,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, repeated, tag = "2")]
    pub repo_tags: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub repo_digests: Vec<String>,
    #[prost(uint64, tag = "4")]
    pub size: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub info: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------
// The client

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

// ---------------------------------------------------------------------------------------
// The test pod

/// The pod's container: `sleep 3600` in busybox.
pub const APP: &str = "app";
pub const POD_NAMESPACE: &str = "default";
/// The container's PATH (with the image's hooks directory, so a bare module name resolves).
pub const PATH_ENV: &str = "/bin:/usr/bin:/hooks";

/// A running pod sandbox with one running busybox container.
#[derive(Clone, Debug)]
pub struct Pod {
    pub name: String,
    pub uid: String,
    pub sandbox_id: String,
    pub sandbox_config: PodSandboxConfig,
    /// The `app` container.
    pub container_id: String,
    /// Host side of the read-only `/data` volume.
    pub data: PathBuf,
    /// Host side of the read-write `/work` volume.
    pub work: PathBuf,
}

/// A host-network sandbox as the kubelet configures one: metadata, log directory, the
/// kubelet's labels, the pod's annotations, and a cgroup parent of the harness's.
pub fn sandbox_config(
    cd: &Containerd,
    name: &str,
    annotations: &[(&str, &str)],
) -> PodSandboxConfig {
    let uid = format!("uid-{name}");
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.clone(),
            namespace: POD_NAMESPACE.into(),
            attempt: 0,
        }),
        hostname: String::new(),
        log_directory: cd.log_dir(name).display().to_string(),
        labels: [
            ("io.kubernetes.pod.name", name),
            ("io.kubernetes.pod.namespace", POD_NAMESPACE),
            ("io.kubernetes.pod.uid", uid.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cd.cgroup_parent(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NODE,
                    pid: CONTAINER,
                    ipc: POD,
                }),
            }),
        }),
    }
}

/// A busybox container `sleep 3600` as the kubelet would create it: env `GREETING=hi` and
/// [`PATH_ENV`], working directory `/tmp`, `data` read-only at `/data`, `work` read-write at
/// `/work`, and the kubelet's labels.
pub fn container_config(
    pod: &PodSandboxConfig,
    name: &str,
    data: &Path,
    work: &Path,
) -> ContainerConfig {
    let meta = pod.metadata.clone().unwrap_or_default();
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: BUSYBOX.into(),
            ..Default::default()
        }),
        command: vec!["/bin/sleep".into()],
        args: vec!["3600".into()],
        working_dir: "/tmp".into(),
        envs: vec![
            KeyValue {
                key: "GREETING".into(),
                value: "hi".into(),
            },
            KeyValue {
                key: "PATH".into(),
                value: PATH_ENV.into(),
            },
        ],
        mounts: vec![
            Mount {
                container_path: "/data".into(),
                host_path: data.display().to_string(),
                readonly: true,
                ..Default::default()
            },
            Mount {
                container_path: "/work".into(),
                host_path: work.display().to_string(),
                readonly: false,
                ..Default::default()
            },
        ],
        labels: [
            ("io.kubernetes.pod.name", meta.name.as_str()),
            ("io.kubernetes.pod.namespace", meta.namespace.as_str()),
            ("io.kubernetes.pod.uid", meta.uid.as_str()),
            ("io.kubernetes.container.name", name),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        annotations: [("io.kubernetes.container.restartCount", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        log_path: format!("{name}/0.log"),
    }
}

/// Run a pod `name` (sandbox + a started `app` container, see [`container_config`]) through
/// `cri`, with its volumes in `cd.volume("<name>/data")` and `.../work`.
pub async fn run_busybox_pod(
    cri: &Cri,
    cd: &Containerd,
    name: &str,
    annotations: &[(&str, &str)],
) -> Result<Pod, Status> {
    let data = cd.volume(&format!("{name}/data"));
    let work = cd.volume(&format!("{name}/work"));
    let sandbox_config = sandbox_config(cd, name, annotations);
    let sandbox_id = cri.run_pod_sandbox(&sandbox_config).await?;
    let mut pod = Pod {
        name: name.into(),
        uid: format!("uid-{name}"),
        sandbox_id,
        sandbox_config,
        container_id: String::new(),
        data,
        work,
    };
    pod.container_id = add_container(cri, &pod, APP).await?;
    Ok(pod)
}

/// Create and start one more busybox container `name` in `pod` (same volumes).
pub async fn add_container(cri: &Cri, pod: &Pod, name: &str) -> Result<String, Status> {
    let config = container_config(&pod.sandbox_config, name, &pod.data, &pod.work);
    let id = cri
        .create_container(&pod.sandbox_id, &config, &pod.sandbox_config)
        .await?;
    cri.start_container(&id).await?;
    Ok(id)
}

// ---------------------------------------------------------------------------------------
// The wasm hooks of the test image

/// WASI preview 1 modules in WebAssembly text, compiled at test time with `wat`.
pub mod hooks {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Common WAT: imports, memory, and `$write(fd, ptr, len)`, `$strlen(ptr)`,
    /// `$memeq(a, b, len)`, `$find_preopen(name, len) -> fd | -1` (the preopen whose name,
    /// without leading or trailing `/`, is `name`).
    const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 4)
  ;; 0: iovec {ptr, len}; 8: bytes written/read; 16..1023: constant strings.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $n))
  (func $memeq (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $no (loop $l
      (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
      (br_if $no (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (i32.const 0))
  ;; Preopen scan: prestat at 1024 (tag, name length), name at 1040 (up to 255 bytes).
  (func $find_preopen (param $name i32) (param $len i32) (result i32)
    (local $fd i32) (local $p i32) (local $n i32) (local $c i32)
    (local.set $fd (i32.const 3))
    (block $end
      (loop $next
        (br_if $end (i32.ge_u (local.get $fd) (i32.const 128)))
        (if (i32.eqz (call $fd_prestat_get (local.get $fd) (i32.const 1024)))
          (then
            (local.set $n (i32.load (i32.const 1028)))
            (if (i32.and (i32.eqz (i32.load8_u (i32.const 1024)))
                         (i32.lt_u (local.get $n) (i32.const 256)))
              (then
                (if (i32.eqz (call $fd_prestat_dir_name (local.get $fd) (i32.const 1040) (local.get $n)))
                  (then
                    (local.set $p (i32.const 1040))
                    ;; strip leading '/'
                    (block $b1
                      (loop $l1
                        (br_if $b1 (i32.eqz (local.get $n)))
                        (br_if $b1 (i32.ne (i32.load8_u (local.get $p)) (i32.const 47)))
                        (local.set $p (i32.add (local.get $p) (i32.const 1)))
                        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                        (br $l1)))
                    ;; strip trailing '/' and NUL
                    (block $b2
                      (loop $l2
                        (br_if $b2 (i32.eqz (local.get $n)))
                        (local.set $c (i32.load8_u (i32.sub (i32.add (local.get $p) (local.get $n)) (i32.const 1))))
                        (br_if $b2 (i32.and (i32.ne (local.get $c) (i32.const 47))
                                            (i32.ne (local.get $c) (i32.const 0))))
                        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                        (br $l2)))
                    (if (i32.eq (local.get $n) (local.get $len))
                      (then
                        (if (call $memeq (local.get $p) (local.get $name) (local.get $n))
                          (then (return (local.get $fd))))))))))))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br $next)))
    (i32.const -1))
"#;

    /// `inspect.wasm`: prints (stdout) one `argv=<arg>` line per argument, one `env:<K=V>`
    /// line per environment variable, one `preopen:<name>` line per preopened directory,
    /// `data:<content>` of `/data/input.txt`, `data-write:denied` (or `allowed`) for an
    /// attempt to create `/data/ro-probe.txt`; writes `written by inspect.wasm\n` to
    /// `/work/out.txt`; prints `inspect: to stderr` on stderr; exits 0.
    /// Failures: exit 10 (no /data), 11 (cannot open input.txt), 12 (no /work),
    /// 13 (cannot create /work/out.txt), with the reason on stderr.
    pub fn inspect() -> Vec<u8> {
        let wat = format!(
            r#"(module {PRELUDE}
  (data (i32.const 16) "argv=")          ;; 16, 5
  (data (i32.const 24) "env:")           ;; 24, 4
  (data (i32.const 32) "\n")             ;; 32, 1
  (data (i32.const 40) "data")           ;; 40, 4
  (data (i32.const 48) "work")           ;; 48, 4
  (data (i32.const 56) "input.txt")      ;; 56, 9
  (data (i32.const 72) "out.txt")        ;; 72, 7
  (data (i32.const 80) "data:")          ;; 80, 5
  (data (i32.const 88) "written by inspect.wasm\n") ;; 88, 24
  (data (i32.const 120) "inspect: to stderr\n")     ;; 120, 19
  (data (i32.const 144) "inspect: no /data preopen\n") ;; 144, 26
  (data (i32.const 176) "inspect: cannot open /data/input.txt\n") ;; 176, 37
  (data (i32.const 216) "inspect: no /work preopen\n") ;; 216, 26
  (data (i32.const 248) "inspect: cannot create /work/out.txt\n") ;; 248, 37
  (data (i32.const 288) "preopen:")       ;; 288, 8
  (data (i32.const 296) "ro-probe.txt")   ;; 296, 12
  (data (i32.const 312) "data-write:denied\n")  ;; 312, 18
  (data (i32.const 336) "data-write:allowed\n") ;; 336, 19
  (func (export "_start")
    (local $i i32) (local $n i32) (local $p i32) (local $fd i32) (local $f i32)
    ;; argv: count at 2048, buffer size at 2052, pointers at 4096, strings at 8192.
    (drop (call $args_sizes_get (i32.const 2048) (i32.const 2052)))
    (drop (call $args_get (i32.const 4096) (i32.const 8192)))
    (local.set $n (i32.load (i32.const 2048)))
    (local.set $i (i32.const 0))
    (block $e (loop $l
      (br_if $e (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $p (i32.load (i32.add (i32.const 4096) (i32.mul (local.get $i) (i32.const 4)))))
      (call $write (i32.const 1) (i32.const 16) (i32.const 5))
      (call $write (i32.const 1) (local.get $p) (call $strlen (local.get $p)))
      (call $write (i32.const 1) (i32.const 32) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    ;; environ: count at 2056, size at 2060, pointers at 65536, strings at 98304.
    (drop (call $environ_sizes_get (i32.const 2056) (i32.const 2060)))
    (drop (call $environ_get (i32.const 65536) (i32.const 98304)))
    (local.set $n (i32.load (i32.const 2056)))
    (local.set $i (i32.const 0))
    (block $e (loop $l
      (br_if $e (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $p (i32.load (i32.add (i32.const 65536) (i32.mul (local.get $i) (i32.const 4)))))
      (call $write (i32.const 1) (i32.const 24) (i32.const 4))
      (call $write (i32.const 1) (local.get $p) (call $strlen (local.get $p)))
      (call $write (i32.const 1) (i32.const 32) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    ;; preopens
    (local.set $fd (i32.const 3))
    (block $e (loop $l
      (br_if $e (i32.ge_u (local.get $fd) (i32.const 128)))
      (if (i32.eqz (call $fd_prestat_get (local.get $fd) (i32.const 1024)))
        (then
          (local.set $n (i32.load (i32.const 1028)))
          (if (i32.lt_u (local.get $n) (i32.const 256))
            (then
              (drop (call $fd_prestat_dir_name (local.get $fd) (i32.const 1040) (local.get $n)))
              (call $write (i32.const 1) (i32.const 288) (i32.const 8))
              (call $write (i32.const 1) (i32.const 1040) (local.get $n))
              (call $write (i32.const 1) (i32.const 32) (i32.const 1))))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br $l)))
    ;; /data/input.txt -> stdout
    (local.set $fd (call $find_preopen (i32.const 40) (i32.const 4)))
    (if (i32.lt_s (local.get $fd) (i32.const 0))
      (then (call $write (i32.const 2) (i32.const 144) (i32.const 26)) (call $proc_exit (i32.const 10))))
    ;; rights: fd_read | fd_seek | fd_tell
    (if (call $path_open (local.get $fd) (i32.const 1) (i32.const 56) (i32.const 9) (i32.const 0)
          (i64.const 38) (i64.const 0) (i32.const 0) (i32.const 2064))
      (then (call $write (i32.const 2) (i32.const 176) (i32.const 37)) (call $proc_exit (i32.const 11))))
    (local.set $f (i32.load (i32.const 2064)))
    (i32.store (i32.const 0) (i32.const 16384))
    (i32.store (i32.const 4) (i32.const 16384))
    (drop (call $fd_read (local.get $f) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.load (i32.const 8)))
    (call $write (i32.const 1) (i32.const 80) (i32.const 5))
    (call $write (i32.const 1) (i32.const 16384) (local.get $n))
    (drop (call $fd_close (local.get $f)))
    ;; /data is read-only: creating a file there must fail. oflags creat|trunc, rights fd_write.
    (if (call $path_open (local.get $fd) (i32.const 1) (i32.const 296) (i32.const 12) (i32.const 9)
          (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 2064))
      (then (call $write (i32.const 1) (i32.const 312) (i32.const 18)))
      (else
        (call $write (i32.const 1) (i32.const 336) (i32.const 19))
        (drop (call $fd_close (i32.load (i32.const 2064))))))
    ;; /work/out.txt <- a line
    (local.set $fd (call $find_preopen (i32.const 48) (i32.const 4)))
    (if (i32.lt_s (local.get $fd) (i32.const 0))
      (then (call $write (i32.const 2) (i32.const 216) (i32.const 26)) (call $proc_exit (i32.const 12))))
    (if (call $path_open (local.get $fd) (i32.const 1) (i32.const 72) (i32.const 7) (i32.const 9)
          (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 2064))
      (then (call $write (i32.const 2) (i32.const 248) (i32.const 37)) (call $proc_exit (i32.const 13))))
    (local.set $f (i32.load (i32.const 2064)))
    (call $write (local.get $f) (i32.const 88) (i32.const 24))
    (drop (call $fd_close (local.get $f)))
    (call $write (i32.const 2) (i32.const 120) (i32.const 19))))
"#
        );
        wat::parse_str(wat).expect("inspect.wat")
    }

    /// `noop.wasm`: returns at once (exit 0, no output).
    pub fn noop() -> Vec<u8> {
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap()
    }

    /// `fail.wasm`: `about to fail` on stdout, `failing on purpose` on stderr, exit 3.
    pub fn fail() -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module {PRELUDE}
  (data (i32.const 16) "about to fail\n")       ;; 14
  (data (i32.const 32) "failing on purpose\n")  ;; 19
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 16) (i32.const 14))
    (call $write (i32.const 2) (i32.const 32) (i32.const 19))
    (call $proc_exit (i32.const 3))))"#
        ))
        .unwrap()
    }

    /// `loop.wasm`: spins forever (until its deadline or cancellation).
    pub fn spin() -> Vec<u8> {
        wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
        )
        .unwrap()
    }

    /// `trap.wasm`: `started` on stdout, then executes `unreachable`.
    pub fn trap() -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module {PRELUDE}
  (data (i32.const 16) "started\n")
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 16) (i32.const 8))
    unreachable))"#
        ))
        .unwrap()
    }

    /// `big.wasm`: 17 MiB of `x` on stdout (more than the CRI's 16 MiB), then `big: done`
    /// on stderr; exits 0.
    pub fn big() -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module {PRELUDE}
  (data (i32.const 16) "big: done\n")
  (func (export "_start") (local $i i32)
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
    (block $e (loop $l
      (br_if $e (i32.ge_u (local.get $i) (i32.const 272)))
      (call $write (i32.const 1) (i32.const 65536) (i32.const 65536))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $write (i32.const 2) (i32.const 16) (i32.const 10))))"#
        ))
        .unwrap()
    }

    /// `escape.wasm` (host only): prints `ESCAPED`. No test may ever see it run.
    pub fn escaped() -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module {PRELUDE}
  (data (i32.const 16) "ESCAPED\n")
  (func (export "_start") (call $write (i32.const 1) (i32.const 16) (i32.const 8))))"#
        ))
        .unwrap()
    }

    /// Write `bytes` to `path`, mode 0755 (as a hook binary ships).
    pub fn install(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The image's `/hooks` (into `tree/hooks`) and the host-only module its symlink points
    /// at (in `host_only`):
    /// - `inspect.wasm`, `noop.wasm`, `fail.wasm`, `loop.wasm`, `trap.wasm`, `big.wasm`:
    ///   see above;
    /// - `hello.wat`: `examples/hooks/bin/hello.wat` (text; prints `hello from a WAT hook`);
    /// - `netprobe.wasm`: `examples/hooks/bin/netprobe.component.wasm` (a component that
    ///   prints what the network policy lets it reach);
    /// - `not-wasm.wasm`: a text file, mode 0755 (runc answers `exec format error`);
    /// - `bad.wasm`: the wasm header, then garbage (an invalid module);
    /// - `escape.wasm` -> `<host_only>/escape.wasm`, an absolute symlink to a path that
    ///   exists on the host only.
    pub fn install_image_hooks(tree: &Path, host_only: &Path) {
        let h = tree.join("hooks");
        install(&h.join("inspect.wasm"), &inspect());
        install(&h.join("noop.wasm"), &noop());
        install(&h.join("fail.wasm"), &fail());
        install(&h.join("loop.wasm"), &spin());
        install(&h.join("trap.wasm"), &trap());
        install(&h.join("big.wasm"), &big());
        let hello =
            std::fs::read(super::super::repo().join("examples/hooks/bin/hello.wat")).unwrap();
        install(&h.join("hello.wat"), &hello);
        let netprobe =
            std::fs::read(super::super::repo().join("examples/hooks/bin/netprobe.component.wasm"))
                .unwrap();
        install(&h.join("netprobe.wasm"), &netprobe);
        install(&h.join("not-wasm.wasm"), b"this is not a wasm module\n");
        install(&h.join("bad.wasm"), b"\0asm\x01\0\0\0 not a valid module");
        let target = host_only.join("escape.wasm");
        install(&target, &escaped());
        std::os::unix::fs::symlink(&target, h.join("escape.wasm")).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// The proxy, in-process

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
