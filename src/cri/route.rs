//! One table: what the proxy does with each call, by its `:path`.

use super::proto::path;

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `ExecSync`: answered here when its command is a wasm module, else forwarded.
    ExecSync,
    /// Forwarded unchanged; once the runtime has answered, the proxy forgets the container
    /// or pod named in the request and cancels its in-flight wasm calls.
    Ends(Ending),
    /// Everything else, unknown and future methods included: forwarded byte for byte.
    Forward,
}

/// Which calls end a container or a pod, and which id their request's field 1 holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Container,
    Sandbox,
}

pub fn route(p: &str) -> Route {
    match p {
        path::EXEC_SYNC => Route::ExecSync,
        path::STOP_CONTAINER | path::REMOVE_CONTAINER => Route::Ends(Ending::Container),
        path::STOP_POD_SANDBOX | path::REMOVE_POD_SANDBOX => Route::Ends(Ending::Sandbox),
        _ => Route::Forward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_paths_are_touched() {
        assert_eq!(
            route("/runtime.v1.RuntimeService/ExecSync"),
            Route::ExecSync
        );
        assert_eq!(
            route("/runtime.v1.RuntimeService/StopContainer"),
            Route::Ends(Ending::Container)
        );
        assert_eq!(
            route("/runtime.v1.RuntimeService/RemovePodSandbox"),
            Route::Ends(Ending::Sandbox)
        );
        for p in [
            "/runtime.v1.RuntimeService/Version",
            "/runtime.v1.RuntimeService/Exec",
            "/runtime.v1.ImageService/PullImage",
            "/runtime.v1alpha2.RuntimeService/ExecSync",
            "/runtime.v1.RuntimeService/StreamContainers",
            "/runtime.v1.RuntimeService/SomethingNew",
        ] {
            assert_eq!(route(p), Route::Forward, "{p}");
        }
    }
}
