//! `validateLifecycle`, `validateProbe` and `validateHandler` (with `stopSignal`): what a
//! container's hooks and probes must satisfy, at the API server's paths with its messages,
//! plus wasmhook's checks of exec modules and named ports.

use k8s_openapi::api::core::v1::{HTTPGetAction, Lifecycle, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{resolve_module, s, Ctr, Validator};
use crate::hook::{names_a_module, ExecPolicy, HostCommand};
use crate::manifest::signals::{linux_stop_signal, linux_stop_signal_names, WINDOWS_STOP_SIGNALS};
use crate::manifest::{names, BadValue, FieldError};

/// A handler as `validateHandler` sees it: lifecycle handlers have `sleep`, probes `grpc`.
struct HandlerView<'a> {
    exec: Option<&'a [String]>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_port: Option<&'a IntOrString>,
    grpc_port: Option<i32>,
    sleep: Option<i64>,
}

impl<'a> HandlerView<'a> {
    fn lifecycle(h: &'a LifecycleHandler) -> Self {
        HandlerView {
            exec: h.exec.as_ref().map(|e| e.command.as_deref().unwrap_or(&[])),
            http_get: h.http_get.as_ref(),
            tcp_port: h.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: None,
            sleep: h.sleep.as_ref().map(|s| s.seconds),
        }
    }

    fn probe(p: &'a Probe) -> Self {
        HandlerView {
            exec: p.exec.as_ref().map(|e| e.command.as_deref().unwrap_or(&[])),
            http_get: p.http_get.as_ref(),
            tcp_port: p.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: p.grpc.as_ref().map(|g| g.port),
            sleep: None,
        }
    }
}

impl Validator<'_> {
    /// `validateLifecycle`: both hooks, then `stopSignal` against `spec.os.name` (`os`).
    pub(super) fn lifecycle(
        &mut self,
        c: &Ctr<'_>,
        lc: &Lifecycle,
        path: &str,
        grace: Option<i64>,
        os: Option<&str>,
    ) {
        let lc_path = format!("{path}.lifecycle");
        for (hook, handler) in [("postStart", &lc.post_start), ("preStop", &lc.pre_stop)] {
            if let Some(h) = handler {
                let hp = format!("{lc_path}.{hook}");
                self.handler(c, path, &HandlerView::lifecycle(h), &hp, grace, true);
            }
        }
        if let Some(signal) = &lc.stop_signal {
            self.stop_signal(signal, &format!("{lc_path}.stopSignal"), os);
        }
    }

    /// `validateStopSignal`: only with `spec.os.name`, only the signals of that OS.
    fn stop_signal(&mut self, signal: &str, path: &str, os: Option<&str>) {
        match os {
            None => self.push(FieldError::forbidden(
                path,
                "may not be set for containers with empty `spec.os.name`",
            )),
            Some("windows") if !WINDOWS_STOP_SIGNALS.contains(&signal) => self.push(
                FieldError::not_supported(path, signal, &WINDOWS_STOP_SIGNALS),
            ),
            Some("linux") if linux_stop_signal(signal).is_none() => {
                let names = linux_stop_signal_names();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                self.push(FieldError::not_supported(path, signal, &names));
            }
            _ => {}
        }
    }

    /// `validateLivenessProbe`, `validateReadinessProbe`, `validateStartupProbe`. Exec
    /// probes run as wasm modules, so their modules are checked as hooks' are.
    pub(super) fn probes(&mut self, c: &Ctr<'_>, path: &str) {
        for (field, probe) in c.probes {
            let Some(p) = probe else { continue };
            let pp = format!("{path}.{field}");
            self.handler(c, path, &HandlerView::probe(p), &pp, None, true);
            let counts = [
                ("initialDelaySeconds", p.initial_delay_seconds),
                ("timeoutSeconds", p.timeout_seconds),
                ("periodSeconds", p.period_seconds),
                ("successThreshold", p.success_threshold),
                ("failureThreshold", p.failure_threshold),
            ];
            for (name, n) in counts {
                let n = i64::from(n.unwrap_or(0));
                if n < 0 {
                    self.push(FieldError::invalid(
                        format!("{pp}.{name}"),
                        BadValue::Int(n),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            if let Some(g) = p.termination_grace_period_seconds.filter(|g| *g <= 0) {
                self.push(FieldError::invalid(
                    format!("{pp}.terminationGracePeriodSeconds"),
                    BadValue::Int(g),
                    "must be greater than 0",
                ));
            }
            match field {
                "readinessProbe" => {
                    if let Some(g) = p.termination_grace_period_seconds {
                        self.push(FieldError::invalid(
                            format!("{pp}.terminationGracePeriodSeconds"),
                            BadValue::Int(g),
                            "must not be set for readinessProbes",
                        ));
                    }
                }
                _ => {
                    let n = p.success_threshold.unwrap_or(0);
                    if n != 1 {
                        self.push(FieldError::invalid(
                            format!("{pp}.successThreshold"),
                            BadValue::Int(i64::from(n)),
                            "must be 1",
                        ));
                    }
                }
            }
        }
    }

    /// `validateHandler`: exactly one handler (extra ones, in the order exec, httpGet,
    /// tcpSocket, grpc, sleep, are each Forbidden and not validated further). For handlers it
    /// runs (`run_here`: hooks and probes of containers that run), wasmhook also checks exec
    /// modules and named ports.
    fn handler(
        &mut self,
        c: &Ctr<'_>,
        ctr_path: &str,
        h: &HandlerView<'_>,
        path: &str,
        grace: Option<i64>,
        run_here: bool,
    ) {
        const MORE: &str = "may not specify more than 1 handler type";
        let mut count = 0;
        let mut first = |this: &mut Self, field: &str| -> bool {
            count += 1;
            if count > 1 {
                this.push(FieldError::forbidden(format!("{path}.{field}"), MORE));
                false
            } else {
                true
            }
        };
        if let Some(cmd) = h.exec {
            if first(self, "exec") {
                if cmd.is_empty() {
                    self.push(FieldError::required(format!("{path}.exec.command"), ""));
                } else if run_here {
                    if let Some(m) = cmd.first() {
                        self.module(m, &format!("{path}.exec.command[0]"));
                    }
                }
            }
        }
        if let Some(g) = h.http_get {
            if first(self, "httpGet") {
                let p = format!("{path}.httpGet");
                if g.path.as_deref().unwrap_or("").is_empty() {
                    self.push(FieldError::required(format!("{p}.path"), ""));
                }
                self.port(c, ctr_path, &g.port, &format!("{p}.port"), run_here);
                let scheme = g.scheme.as_deref().unwrap_or("");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    self.push(FieldError::not_supported(
                        format!("{p}.scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
                for header in g.http_headers.iter().flatten() {
                    self.invalid_each(
                        &format!("{p}.httpHeaders"),
                        s(&header.name),
                        names::is_http_header_name(&header.name),
                    );
                }
            }
        }
        if let Some(port) = h.tcp_port {
            if first(self, "tcpSocket") {
                self.port(
                    c,
                    ctr_path,
                    port,
                    &format!("{path}.tcpSocket.port"),
                    run_here,
                );
            }
        }
        if let Some(port) = h.grpc_port {
            if first(self, "grpc") {
                let n = i64::from(port);
                self.invalid_each(
                    &format!("{path}.grpc.port"),
                    BadValue::Int(n),
                    names::is_valid_port_num(n),
                );
            }
        }
        if let Some(seconds) = h.sleep {
            if first(self, "sleep") {
                if let Some(g) = grace {
                    if seconds < 0 || seconds > g {
                        self.push(FieldError::invalid(
                            format!("{path}.sleep"),
                            BadValue::Int(seconds),
                            format!(
                                "must be non-negative and less than terminationGracePeriodSeconds ({g})"
                            ),
                        ));
                    }
                }
            }
        }
        if count == 0 {
            self.push(FieldError::required(path, "must specify a handler type"));
        }
    }

    /// `ValidatePortNumOrName`, plus (`run_here`, wasmhook) a valid name must name one of the
    /// container's ports, since that is the only way it can resolve at run time.
    fn port(
        &mut self,
        c: &Ctr<'_>,
        ctr_path: &str,
        port: &IntOrString,
        path: &str,
        run_here: bool,
    ) {
        match port {
            IntOrString::Int(n) => {
                let n = i64::from(*n);
                self.invalid_each(path, BadValue::Int(n), names::is_valid_port_num(n));
            }
            IntOrString::String(name) => {
                let msgs = names::is_valid_port_name(name);
                if !msgs.is_empty() {
                    self.invalid_each(path, s(name), msgs);
                } else if run_here
                    && !c
                        .ports
                        .iter()
                        .any(|p| p.name.as_deref() == Some(name.as_str()))
                {
                    self.push(FieldError::not_found(
                        path,
                        name,
                        format!("wasmhook resolves named ports from {ctr_path}.ports, which has no port of this name"),
                    ));
                }
            }
        }
    }

    /// wasmhook: a module on the host loads; anything else is a native command, which the
    /// exec policy must allow (see the module docs of [`super`]).
    fn module(&mut self, command0: &str, path: &str) {
        let resolved = resolve_module(command0, self.manifest_dir, self.hooks_dir);
        let native = match &resolved {
            Ok(file) => match (self.check_module)(file) {
                Ok(HostCommand::Module) => return,
                Ok(HostCommand::Native) => true,
                Err(e) => return self.push(FieldError::invalid(path, s(command0), e)),
            },
            Err(_) => !names_a_module(command0),
        };
        if self.modules_in_containers {
            // It may be a module in the image: the policy is applied when the hook runs.
            return;
        }
        if !native {
            let tried = resolved.err().unwrap_or_default();
            return self.push(FieldError::not_found(path, command0, tried));
        }
        if self.exec_policy == ExecPolicy::WasmOnly {
            self.push(FieldError::forbidden(
                path,
                format!(
                    "{} is not a wasm module and the exec policy is wasm-only, so wasmhook will not run it natively; \
                     use a wasm module, or allow native commands (remove the wasmhook.dev/exec-policy annotation; --exec-policy auto)",
                    s(command0)
                ),
            ));
        }
    }
}
