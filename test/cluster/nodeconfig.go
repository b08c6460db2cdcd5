package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// The node's fixed facts. Every node has its own network namespace, so the pod range and the names
// inside it are the same for every cluster on the machine; only the host side of its link differs.
const (
	nodeName = "kubecluster-node"
	podCIDR  = "10.244.0.0/24"
)

// pauseImage is the sandbox image's reference (built locally, imported at start, never pulled), from
// the images.json the build put beside the node's binaries.
func pauseImage(bin string) string {
	raw, err := os.ReadFile(filepath.Join(bin, "images.json"))
	fail(err)
	var images map[string]struct{ Ref string }
	fail(json.Unmarshal(raw, &images))
	if images["pause"].Ref == "" {
		fail(fmt.Errorf("%s names no pause image", filepath.Join(bin, "images.json")))
	}
	return images["pause"].Ref
}

// nodeFiles writes the node's configuration: containerd's, the CNI network, the kubelet's and
// kube-proxy's, and their kubeconfigs. Everything the node writes lives under n.dir, except its
// sockets (n.run: unix socket paths must be short) and its cgroups.
func nodeFiles(d stateDir, p *pki, n *nodeNet, apiPort int) {
	server := fmt.Sprintf("https://%s:%d", n.nodeIP, apiPort)
	p.client("node", "system:node:"+nodeName, "system:nodes")
	p.client("proxy", "system:kube-proxy")
	p.serving("kubelet", nodeName, []string{nodeName}, n.nodeIP)
	writeKubeconfig(d, "node/kubelet.kubeconfig", server, "node")
	writeKubeconfig(d, "node/proxy.kubeconfig", server, "proxy")
	for _, sub := range []string{"cni/net.d", "cni/ipam", "kubelet", "pod-logs", "containerd"} {
		fail(os.MkdirAll(filepath.Join(n.dir, sub), 0o700))
	}
	fail(os.MkdirAll(n.run, 0o700))
	write := func(name, text string) { fail(os.WriteFile(filepath.Join(n.dir, name), []byte(text), 0o600)) }
	write("containerd/config.toml", containerdConfig(n))
	write("cni/net.d/10-node.conflist", cniConfig(n))
	write("kubelet/config.yaml", kubeletConfig(d, n))
	write("proxy.yaml", proxyConfig(n))
	// No cluster DNS here: an empty resolver list makes a lookup fail at once instead of timing out.
	write("resolv.conf", "# the test node has no DNS\n")
}

func containerdConfig(n *nodeNet) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
# Plugins that would touch the host outside the node's directories, or that a test node does not use.
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  level = "warn"

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = %[5]q
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[6]q
[plugins."io.containerd.cri.v1.runtime"]
  cdi_spec_dirs = []
  # This host withholds CAP_SYS_RESOURCE: no OOM score may go below containerd's own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = %[7]q
        Root = %[8]q
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    # containerd brings up each pod's lo itself: the loopback plugin would leave a libcni cache
    # file without this node's name in it behind when the node is killed.
    use_internal_loopback = true
    bin_dirs = [%[9]q]
    conf_dir = %[10]q
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, filepath.Join(n.dir, "containerd/root"), filepath.Join(n.dir, "containerd/state"),
		n.containerdSock(), filepath.Join(n.run, "containerd.sock.ttrpc"), filepath.Join(n.run, "s"), pauseImage(n.bin),
		filepath.Join(n.bin, "runc"), filepath.Join(n.run, "runc"), filepath.Join(n.bin, "cni"), filepath.Join(n.dir, "cni/net.d"))
}

// cniConfig is the pod network: one bridge inside the node's network namespace, addresses from a
// private range, portmap for hostPort.
func cniConfig(n *nodeNet) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": %q }]], "routes": [{ "dst": "0.0.0.0/0" }], "dataDir": %q }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
`, n.cniNetwork(), podCIDR, filepath.Join(n.dir, "cni/ipam"))
}

// kubeletSyncSeconds is the kubelet's sync period: how often it re-syncs every pod, which bounds how
// late a ConfigMap or Secret volume update reaches the pod (real clusters: 60 s).
const kubeletSyncSeconds = 10

func kubeletConfig(d stateDir, n *nodeNet) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host has cgroup v1 hierarchies (kubelet 1.35+ refuses them unless told).
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]q
containerRuntimeEndpoint: unix://%[2]s
address: %[3]s
readOnlyPort: 0
healthzPort: 0
tlsCertFile: %[4]q
tlsPrivateKeyFile: %[5]q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[6]q}
authorization: {mode: Webhook}
clusterDomain: cluster.local
resolvConf: %[7]q
failSwapOn: false
# Never write the host's kernel settings (the kubelet's mount namespace shows it the values it wants).
protectKernelDefaults: true
podLogsDir: %[8]q
volumePluginDir: %[9]q
syncFrequency: %[10]ds
# Images are imported, never pulled: never collect them, never evict for disk below 1 percent.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
serializeImagePulls: false
`, n.cgroup, n.containerdSock(), n.nodeIP, d.path("kubelet.crt"), d.path("kubelet.key"), d.path("ca.crt"),
		filepath.Join(n.dir, "resolv.conf"), filepath.Join(n.dir, "pod-logs"), filepath.Join(n.dir, "kubelet/volume-plugins"),
		kubeletSyncSeconds)
}

func proxyConfig(n *nodeNet) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
bindAddress: %s
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: %s
# Conntrack table sizes and timeouts are host-wide: leave them as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {syncPeriod: 30s, minSyncPeriod: 0s}
`, filepath.Join(n.dir, "proxy.kubeconfig"), nodeName, n.nodeIP, podCIDR)
}
