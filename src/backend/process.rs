//! The process backend: containers as host process groups. (Being written: issue 6.)

use async_trait::async_trait;

use super::*;

/// Runs each container as a host process group; the embedded default.
#[derive(Debug, Default)]
pub struct ProcessBackend {}

#[async_trait]
impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }
    async fn create_sandbox(&self, _spec: &SandboxSpec) -> Result<Sandbox> {
        Err(BackendError("not implemented".into()))
    }
    async fn remove_sandbox(&self, _sandbox: &Sandbox) -> Result<()> {
        Ok(())
    }
    async fn create_container(&self, _s: &Sandbox, _spec: &ContainerSpec) -> Result<ContainerId> {
        Err(BackendError("not implemented".into()))
    }
    async fn start_container(&self, _id: &ContainerId) -> Result<()> {
        Err(BackendError("not implemented".into()))
    }
    async fn signal(&self, _id: &ContainerId, _signal: i32) -> Result<()> {
        Ok(())
    }
    async fn wait(&self, _id: &ContainerId) -> Result<ExitStatus> {
        Err(BackendError("not implemented".into()))
    }
    async fn remove_container(&self, _id: &ContainerId) -> Result<()> {
        Ok(())
    }
}
