#!/usr/bin/env bash
# Install the wasmhook CRI proxy on a Kubernetes node that runs containerd under systemd.
#
#   sudo deploy/install.sh [path/to/wasmhook]     install and start the proxy (kubelet unchanged);
#                                                 default: scripts/build-static.sh's binary
#   sudo deploy/install.sh --uninstall            stop and remove it (point the kubelet back first)
#
# It installs the binary, the systemd unit and the kubelet drop-in, starts the proxy and checks
# that it relays to containerd. It does NOT edit the kubelet's configuration: do that step by
# hand (README, "On a Kubernetes node"), so rolling back is one edit and a restart.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "$0: run as root" >&2; exit 1; }

if [ "${1:-}" = --uninstall ]; then
    if grep -rqs 'wasmhook/cri.sock' /var/lib/kubelet/config.yaml /etc/default/kubelet /etc/sysconfig/kubelet 2>/dev/null; then
        echo "$0: the kubelet still points at /run/wasmhook/cri.sock: point it back at containerd and restart it first" >&2
        exit 1
    fi
    systemctl disable --now wasmhook-cri.service wasmhook-cri.socket || true
    rm -f /etc/systemd/system/wasmhook-cri.service /etc/systemd/system/wasmhook-cri.socket \
        /etc/systemd/system/kubelet.service.d/20-wasmhook.conf
    systemctl daemon-reload
    rm -f /usr/local/bin/wasmhook
    echo "wasmhook CRI proxy removed"
    exit 0
fi

# Default: the static binary of scripts/build-static.sh (it runs whatever the node's glibc).
bin=${1:-$here/../target/$(uname -m)-unknown-linux-gnu/release/wasmhook}
[ -x "$bin" ] || { echo "$0: $bin not found (scripts/build-static.sh, or pass the binary's path)" >&2; exit 1; }
install -m 0755 "$bin" /usr/local/bin/wasmhook
install -m 0644 "$here/wasmhook-cri.service" /etc/systemd/system/wasmhook-cri.service
install -m 0644 "$here/wasmhook-cri.socket" /etc/systemd/system/wasmhook-cri.socket
install -d /etc/systemd/system/kubelet.service.d
install -m 0644 "$here/kubelet-wasmhook.conf" /etc/systemd/system/kubelet.service.d/20-wasmhook.conf
systemctl daemon-reload
systemctl enable --now wasmhook-cri.socket
systemctl enable --now wasmhook-cri.service
for _ in $(seq 50); do [ -S /run/wasmhook/cri.sock ] && break; sleep 0.1; done
[ -S /run/wasmhook/cri.sock ] || { echo "$0: the proxy did not create its socket; journalctl -u wasmhook-cri" >&2; exit 1; }
if curl -fsS http://127.0.0.1:9469/metrics >/dev/null 2>&1; then
    echo "metrics: http://127.0.0.1:9469/metrics"
fi
cat <<MSG
wasmhook CRI proxy running (systemctl status wasmhook-cri).
Next: point the kubelet at it (deploy/kubelet-config-patch.yaml) and restart the kubelet:
    containerRuntimeEndpoint: unix:///run/wasmhook/cri.sock
MSG
