//! The test pod: a sandbox with one busybox container, and more containers in it.

use super::*;

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
