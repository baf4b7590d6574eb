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

mod client;
pub mod hooks;
mod messages;
mod pods;
mod proxy;

pub use client::*;
pub use messages::*;
pub use pods::*;
pub use proxy::*;

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
