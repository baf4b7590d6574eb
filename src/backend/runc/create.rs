//! Creating a container (see "Container" in the module docs of [`super`]): image, bundle,
//! runtime spec, `runc create`, and the init's pidfd; the longest operation, so a file of
//! its own, as youki keeps `container_create`-like builders apart.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::command::{runc_error, runc_failure};
use super::pull::{lookup, parse_reference};
use super::reap::reap;
use super::rootfs::{make_rootfs, merge_env, remove_bundle};
use super::{image, spec, ContainerEntry, RuncBackend};
use crate::backend::output::pump_lines;
use crate::backend::registry::{sanitize, Status, StatusCell};
use crate::backend::{
    BackendError, ContainerId, ContainerSpec, ImagePresence, LogStream, Result, Sandbox,
};

fn err(msg: impl Into<String>) -> BackendError {
    BackendError::other(msg)
}

impl RuncBackend {
    /// `Backend::image_presence`: the images directory first, then the pulled images.
    pub(super) async fn presence(&self, image: &str) -> Result<ImagePresence> {
        Ok(match self.find_image(image).await? {
            Some((_, p)) => p,
            None => ImagePresence::Absent,
        })
    }

    /// `image` from the images directory ([`ImagePresence::Provided`]) or the pulled ones
    /// ([`ImagePresence::Present`]); `None` when neither has it. An image directory entry
    /// that is there but broken is an error, not a reason to pull.
    async fn find_image(&self, image: &str) -> Result<Option<(image::Image, ImagePresence)>> {
        if let Some(dir) = self.config.images_dir.clone() {
            let (name, cache) = (image.to_string(), self.state_dir.join("images"));
            let local = tokio::task::spawn_blocking(move || image::resolve(&dir, &name, &cache))
                .await
                .map_err(|e| err(e.to_string()))?;
            match local {
                Ok(img) => return Ok(Some((img, ImagePresence::Provided))),
                Err(image::LocalError::NotFound(_)) => {}
                Err(image::LocalError::Failed(e)) => return Err(err(e)),
            }
        }
        let reference = parse_reference(image)?;
        let pulled = {
            let cache = self.state_dir.join("images");
            tokio::task::spawn_blocking(move || lookup(&cache, &reference))
                .await
                .map_err(|e| err(e.to_string()))?
                .map_err(err)?
        };
        Ok(pulled.map(|img| (img, ImagePresence::Present)))
    }

    /// `Backend::create_container`: resolve the image, make the bundle (rootfs, spec),
    /// `runc create`, open the init's pidfd, start reaping and pumping output.
    pub(super) async fn create(
        &self,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<ContainerId> {
        if let Err(e) = &self.subreaper {
            return Err(BackendError::unavailable(e.clone()));
        }
        let sb_dir = self.registry.sandbox_dir(&sandbox.id)?;
        let netns = sandbox
            .netns
            .clone()
            .ok_or_else(|| err("the sandbox has no network namespace"))?;
        let image_name = spec
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| err(format!("container \"{}\": no image", spec.name)))?;
        let img = match self.find_image(&image_name).await? {
            Some((img, _)) => img,
            None => {
                return Err(BackendError::not_found(format!(
                    "image \"{image_name}\" not found: not in the image directory (--images), \
                     not pulled"
                )))
            }
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{}-{seq}", sandbox.id, sanitize(&spec.name));
        let bundle = sb_dir.join("containers").join(&id);
        std::fs::create_dir_all(&bundle)
            .map_err(|e| err(format!("creating {}: {e}", bundle.display())))?;
        let overlay = {
            let (b, l) = (bundle.clone(), img.rootfs.clone());
            match tokio::task::spawn_blocking(move || make_rootfs(&b, &l)).await {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    remove_bundle(&bundle, false);
                    return Err(err(e));
                }
                Err(e) => return Err(err(e.to_string())),
            }
        };
        let fail = |msg: String| {
            remove_bundle(&bundle, overlay);
            err(msg)
        };
        let argv = if spec.argv.is_empty() {
            img.entrypoint.iter().chain(&img.cmd).cloned().collect()
        } else {
            spec.argv.clone()
        };
        if argv.is_empty() {
            return Err(fail(format!(
                "container \"{}\": no command specified",
                spec.name
            )));
        }
        let cgroups = spec.memory_limit.is_some() || spec.cpu_limit_millis.is_some();
        let cgroups_ok = cgroups && self.cgroups_ok();
        if cgroups && !cgroups_ok {
            tracing::warn!(
                "container {}: no cgroup memory/cpu controllers on this host; limits not applied",
                spec.name
            );
        }
        let cwd = spec
            .working_dir
            .as_ref()
            .map(|p| p.display().to_string())
            .or(img.working_dir.clone())
            .unwrap_or_else(|| "/".into());
        let env = merge_env(&img.env, &spec.env);
        let path_var = env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .map(str::to_owned);
        let oci = spec::build(&spec::SpecInput {
            rootfs: &bundle.join("rootfs"),
            argv,
            env,
            cwd: cwd.clone(),
            hostname: sandbox.pod.name.chars().take(63).collect(),
            netns: &netns,
            mounts: &spec.mounts,
            memory_limit: spec.memory_limit.filter(|_| cgroups_ok),
            cpu_limit_millis: spec.cpu_limit_millis.filter(|_| cgroups_ok),
        })
        .map_err(|e| fail(format!("runtime spec: {e}")))?;
        oci.save(bundle.join("config.json"))
            .map_err(|e| fail(format!("writing config.json: {e}")))?;

        // stdio of `runc create`, inherited by the container.
        let (stdout, stderr, readers) = if self.config.logs.is_some() {
            let (or, ow) = std::io::pipe().map_err(|e| fail(format!("pipe: {e}")))?;
            let (er, ew) = std::io::pipe().map_err(|e| fail(format!("pipe: {e}")))?;
            (Stdio::from(ow), Stdio::from(ew), Some((or, er)))
        } else {
            (Stdio::null(), Stdio::null(), None)
        };
        let log = bundle.join("runc.log");
        let pid_file = bundle.join("init.pid");
        let mut cmd = self.runc_cmd();
        cmd.arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "create", "--bundle"])
            .arg(&bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&id)
            .stdout(stdout)
            .stderr(stderr);
        let status = cmd.status().await;
        drop(cmd); // closes our copies of the pipes' write ends
                   // `Err(Ok(runc's message))`, or `Err(Err(runc did not run))`.
        let created: std::result::Result<(), std::result::Result<String, BackendError>> =
            match status {
                Ok(s) if s.success() => Ok(()),
                Ok(_) => Err(Ok(runc_error(&log, b"runc create failed"))),
                Err(e) => Err(Err(self.cannot_run(e))),
            };
        if let Err(e) = created {
            self.delete_blocking(&id);
            remove_bundle(&bundle, overlay);
            return Err(match e {
                // containerd's wording, as the kubelet shows it in the `Failed` event.
                Ok(msg) => runc_failure(
                    &msg,
                    format!(
                        "failed to create containerd task: failed to create shim task: OCI \
                         runtime create failed: {msg}: unknown"
                    ),
                ),
                Err(cannot_run) => cannot_run,
            });
        }
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        let pidfd =
            pid.map(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::NONBLOCK));
        let pidfd = match pidfd {
            Some(Ok(fd)) => fd,
            other => {
                self.delete_blocking(&id);
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "no pid file".into(),
                };
                return Err(fail(format!(
                    "container \"{}\": init process: {why}",
                    spec.name
                )));
            }
        };
        let entry = Arc::new(ContainerEntry {
            id: id.clone(),
            name: spec.name.clone(),
            sandbox_id: sandbox.id.clone(),
            bundle: bundle.clone(),
            overlay,
            pid: pid.map_or(0, |p| p.as_raw_nonzero().get()),
            cwd,
            path: path_var,
            status: StatusCell::new(Status::Created),
        });
        let mut pumps = Vec::new();
        if let (Some((or, er)), Some(tx)) = (readers, self.config.logs.clone()) {
            for (r, stream) in [
                (OwnedFd::from(or), LogStream::Stdout),
                (OwnedFd::from(er), LogStream::Stderr),
            ] {
                match tokio::net::unix::pipe::Receiver::from_owned_fd(r) {
                    Ok(rx) => pumps.push(tokio::spawn(pump_lines(
                        rx,
                        tx.clone(),
                        sandbox.pod.name.clone(),
                        spec.name.clone(),
                        stream,
                    ))),
                    Err(e) => tracing::warn!("reading output of {}: {e}", spec.name),
                }
            }
        }
        tokio::spawn(reap(entry.clone(), pidfd, pumps));
        self.registry
            .add_container(&sandbox.id, id.clone(), entry)
            .map_err(|_| {
                self.delete_blocking(&id);
                remove_bundle(&bundle, overlay);
                BackendError::not_found(format!("sandbox \"{}\" was removed", sandbox.id))
            })
    }
}
