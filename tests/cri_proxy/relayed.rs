//! What the proxy does not answer comes back from containerd unchanged: replies compared
//! byte for byte (up to field order) with containerd's own.

use super::*;

/// A shell command is not wasm: relayed to containerd (runc), reply identical.
pub(super) async fn shell_command_relayed_unchanged(w: &World, _: &Containerd) {
    let cmd = ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"];
    for timeout in [0, 5] {
        let msg = cri::exec_sync_request(&w.pod.container_id, &cmd, timeout).encode_to_vec();
        let replies = both_raw(w, "ExecSync", &msg).await;
        let r =
            cri::ExecSyncResponse::decode(wasmhook::grpc::unframe(replies.1.body.clone()).unwrap())
                .unwrap();
        assert_eq!(
            (r.exit_code, r.stdout(), r.stderr()),
            (3, "out\n".into(), "err\n".into())
        );
        assert_same_reply(&format!("ExecSync sh (timeout {timeout})"), replies);
    }
}

/// What the proxy does not run is containerd's to answer, errors included.
pub(super) async fn containerd_errors_come_back_verbatim(w: &World, _: &Containerd) {
    // Unknown container: NotFound, no ids in the text: byte for byte.
    let msg =
        cri::exec_sync_request("0123456789abcdef", &["/hooks/inspect.wasm"], 0).encode_to_vec();
    let replies = both_raw(w, "ExecSync", &msg).await;
    assert_eq!(
        replies.1.grpc_status().as_deref(),
        Some("5"),
        "{:?}",
        replies.1
    );
    assert_same_reply("ExecSync unknown container", replies);
    let e = w
        .proxy
        .exec_sync("0123456789abcdef", &["/hooks/noop.wasm"], 0)
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::NotFound, "{e}");

    // Empty command, a text file named .wasm, a module that is not there: containerd's text
    // (with its random exec id).
    for (cmd, text) in [
        (&[][..], "args must not be empty"),
        (&["/hooks/not-wasm.wasm"][..], "exec format error"),
        (&["/hooks/missing.wasm"][..], "no such file or directory"),
        (&["missing.wasm"][..], "executable file not found in $PATH"),
    ] {
        let p = w.proxy.exec_sync(&w.pod.container_id, cmd, 0).await;
        let d = w.direct.exec_sync(&w.pod.container_id, cmd, 0).await;
        eprintln!("  {cmd:?}: {p:?}");
        // runc reports a file it cannot exec as exit 1 + stderr, the rest as gRPC errors.
        match (p, d) {
            (Err(p), Err(d)) => {
                assert_eq!(
                    (p.code, cri::normalize_ids(&p.message)),
                    (d.code, cri::normalize_ids(&d.message)),
                    "{cmd:?}"
                );
                assert!(p.message.contains(text), "{cmd:?}: {p}");
            }
            (Ok(p), Ok(d)) => {
                assert_eq!(p, d, "{cmd:?}");
                assert_ne!(p.exit_code, 0, "{cmd:?}");
                assert!(p.stderr().contains(text), "{cmd:?}: {p:?}");
            }
            (p, d) => panic!("{cmd:?}: the proxy answered {p:?}, containerd {d:?}"),
        }
    }
}

/// Calls the proxy does not own come back exactly as containerd sends them.
pub(super) async fn other_calls_pass_through_byte_for_byte(w: &World, _: &Containerd) {
    let id = &w.pod.container_id;
    let calls: Vec<(&str, Vec<u8>)> = vec![
        (
            "Version",
            cri::VersionRequest {
                version: "v1".into(),
            }
            .encode_to_vec(),
        ),
        (
            "ListContainers",
            cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    id: id.clone(),
                    ..Default::default()
                }),
            }
            .encode_to_vec(),
        ),
        (
            "ContainerStatus",
            cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            }
            .encode_to_vec(),
        ),
        (
            "ContainerStatus",
            cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: true,
            }
            .encode_to_vec(),
        ),
        (
            "PodSandboxStatus",
            cri::PodSandboxStatusRequest {
                pod_sandbox_id: w.pod.sandbox_id.clone(),
                verbose: false,
            }
            .encode_to_vec(),
        ),
        (
            "/runtime.v1.ImageService/ImageStatus",
            cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: common::containerd::BUSYBOX.into(),
                    ..Default::default()
                }),
                verbose: false,
            }
            .encode_to_vec(),
        ),
        // A field number no CRI message has: containerd ignores it, so must the relay.
        ("Version", {
            let mut m = cri::VersionRequest {
                version: "v1".into(),
            }
            .encode_to_vec();
            m.extend_from_slice(&[0xf8, 0x06, 0x2a]); // field 111, varint 42
            m
        }),
    ];
    for (path, msg) in calls {
        let replies = both_raw(w, path, &msg).await;
        assert_eq!(
            replies.1.grpc_status().as_deref(),
            Some("0"),
            "{path}: {:?}",
            replies.1
        );
        assert!(replies.1.body.len() > 5, "{path}: empty reply");
        assert_same_reply(path, replies);
    }

    // A method containerd does not have: its own Unimplemented.
    let replies = both_raw(w, "/runtime.v1.RuntimeService/NoSuchMethod", &[]).await;
    assert_eq!(
        replies.1.grpc_status().as_deref(),
        Some("12"),
        "{:?}",
        replies.1
    );
    eprintln!("  NoSuchMethod: {:?}", replies.1.grpc_message());
    assert_same_reply("NoSuchMethod", replies);
}

/// The reply comparison forgives containerd's random map order, and nothing else.
#[test]
fn field_order_comparison_is_sound() {
    use cri::same_up_to_field_order as same;
    let frame = |m: &[u8]| wasmhook::grpc::frame(m).to_vec();
    let entry = |k: &str, v: &str| {
        let mut e = vec![0x0a, k.len() as u8];
        e.extend_from_slice(k.as_bytes());
        e.extend_from_slice(&[0x12, v.len() as u8]);
        e.extend_from_slice(v.as_bytes());
        e
    };
    // A message with field 1 = "id" and a map<string,string> at field 8, entries in order.
    let msg = |entries: &[(&str, &str)]| {
        let mut m = vec![0x0a, 2, b'i', b'd'];
        for (k, v) in entries {
            let e = entry(k, v);
            m.push(0x42);
            m.push(e.len() as u8);
            m.extend_from_slice(&e);
        }
        frame(&m)
    };
    let ab = msg(&[("a", "1"), ("b", "2")]);
    assert!(same(&ab, &msg(&[("b", "2"), ("a", "1")])));
    assert!(!same(&ab, &msg(&[("a", "2"), ("b", "1")])));
    assert!(!same(&ab, &msg(&[("a", "1"), ("c", "2")])));
    assert!(!same(&ab, &msg(&[("a", "1")])));
    assert!(same(b"", b""));
    assert!(!same(&ab, b""));
}
