//! The CRI messages the proxy decodes or builds, hand-written with prost (no protoc, no
//! generated code), and only the fields it reads. Field numbers are cri-api's
//! (`pkg/apis/runtime/v1/api.proto`); unit tests pin them against hand-encoded bytes.
//!
//! Only calls the proxy answers or makes itself use these types: a forwarded call is never
//! decoded and re-encoded (prost would drop fields it does not know).

use std::collections::HashMap;

/// `runtime.v1.RuntimeService` method paths the proxy acts on.
pub mod path {
    pub const EXEC_SYNC: &str = "/runtime.v1.RuntimeService/ExecSync";
    pub const STOP_CONTAINER: &str = "/runtime.v1.RuntimeService/StopContainer";
    pub const REMOVE_CONTAINER: &str = "/runtime.v1.RuntimeService/RemoveContainer";
    pub const STOP_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/StopPodSandbox";
    pub const REMOVE_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/RemovePodSandbox";
    pub const CONTAINER_STATUS: &str = "/runtime.v1.RuntimeService/ContainerStatus";
    pub const POD_SANDBOX_STATUS: &str = "/runtime.v1.RuntimeService/PodSandboxStatus";
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecSyncRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, repeated, tag = "2")]
    pub cmd: Vec<String>,
    /// Seconds; 0 = no timeout (lifecycle hooks), > 0 = a probe's `timeoutSeconds`.
    #[prost(int64, tag = "3")]
    pub timeout: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecSyncResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub stdout: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub stderr: Vec<u8>,
    #[prost(int32, tag = "3")]
    pub exit_code: i32,
}

/// The first field of `StopContainerRequest` and `RemoveContainerRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerIdRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

/// The first field of `StopPodSandboxRequest` and `RemovePodSandboxRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxIdRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<ContainerStatus>,
    /// With `verbose`, containerd's `info` key holds the JSON of [`super::context`]'s
    /// `ContainerInfo` (pid, sandboxID, runtimeSpec).
    #[prost(map = "string, string", tag = "2")]
    pub info: HashMap<String, String>,
}

/// `ContainerState`: CREATED 0, RUNNING 1, EXITED 2, UNKNOWN 3.
pub const CONTAINER_RUNNING: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(map = "string, string", tag = "12")]
    pub labels: HashMap<String, String>,
    #[prost(map = "string, string", tag = "13")]
    pub annotations: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<PodSandboxStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(map = "string, string", tag = "8")]
    pub annotations: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Bytes written by hand from the proto's field numbers and wire types, so a wrong tag
    /// in the structs above fails here, not against a live runtime.
    #[test]
    fn exec_sync_field_numbers() {
        // container_id=1 "c", cmd=2 "a","b", timeout=3 5
        let wire = [0x0a, 1, b'c', 0x12, 1, b'a', 0x12, 1, b'b', 0x18, 5];
        let req = ExecSyncRequest::decode(&wire[..]).unwrap();
        assert_eq!(req.container_id, "c");
        assert_eq!(req.cmd, ["a", "b"]);
        assert_eq!(req.timeout, 5);
        let resp = ExecSyncResponse {
            stdout: b"o".to_vec(),
            stderr: b"e".to_vec(),
            exit_code: 3,
        };
        assert_eq!(
            resp.encode_to_vec(),
            [0x0a, 1, b'o', 0x12, 1, b'e', 0x18, 3]
        );
    }

    #[test]
    fn unknown_fields_are_skipped_when_decoding() {
        // ExecSyncRequest with an unknown field 9 (varint) before the known ones.
        let wire = [0x48, 1, 0x0a, 1, b'c', 0x18, 2];
        let req = ExecSyncRequest::decode(&wire[..]).unwrap();
        assert_eq!((req.container_id.as_str(), req.timeout), ("c", 2));
    }

    #[test]
    fn status_field_numbers() {
        // ContainerStatusResponse{status{id=1 "x", state=3 1, labels=12 {"k":"v"}}, info=2 {"info":"{}"}}
        let labels_entry = [0x0a, 1, b'k', 0x12, 1, b'v'];
        let mut status = vec![0x0a, 1, b'x', 0x18, 1, 0x62, labels_entry.len() as u8];
        status.extend_from_slice(&labels_entry);
        let info_entry = [0x0a, 4, b'i', b'n', b'f', b'o', 0x12, 2, b'{', b'}'];
        let mut wire = vec![0x0a, status.len() as u8];
        wire.extend_from_slice(&status);
        wire.extend_from_slice(&[0x12, info_entry.len() as u8]);
        wire.extend_from_slice(&info_entry);
        let resp = ContainerStatusResponse::decode(&wire[..]).unwrap();
        let s = resp.status.unwrap();
        assert_eq!((s.id.as_str(), s.state), ("x", CONTAINER_RUNNING));
        assert_eq!(s.labels["k"], "v");
        assert_eq!(resp.info["info"], "{}");

        // PodSandboxStatusResponse{status{metadata=2{name "p"}, annotations=8 {"a":"b"}}}
        let entry = [0x0a, 1, b'a', 0x12, 1, b'b'];
        let mut st = vec![0x12, 3, 0x0a, 1, b'p', 0x42, entry.len() as u8];
        st.extend_from_slice(&entry);
        let mut wire = vec![0x0a, st.len() as u8];
        wire.extend_from_slice(&st);
        let resp = PodSandboxStatusResponse::decode(&wire[..]).unwrap();
        let s = resp.status.unwrap();
        assert_eq!(s.metadata.unwrap().name, "p");
        assert_eq!(s.annotations["a"], "b");
    }
}
