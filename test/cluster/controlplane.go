package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// controllers are the kube-controller-manager controllers that do their job without a cloud: what a
// real cluster does with the objects a job applies (Deployments get ReplicaSets and Pods, Services get
// EndpointSlices, Jobs get Pods), aggregated ClusterRoles get their rules, namespaces get
// kube-root-ca.crt; with a node, also node lifecycle. Left out: node IPAM and attach-detach (the one
// test node is configured directly and has no cloud volumes), cloud and certificate signing (no cloud, no signer
// keys), the horizontal-pod-autoscaler (no metrics API), bootstrap tokens (disabled by default in
// real clusters).
var controllers = []string{
	"garbage-collector-controller", "namespace-controller",
	"serviceaccount-controller", "serviceaccount-token-controller", "legacy-serviceaccount-token-cleaner-controller",
	"root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
	"deployment-controller", "replicaset-controller", "replicationcontroller-controller",
	"statefulset-controller", "daemonset-controller", "job-controller", "cronjob-controller",
	"ttl-after-finished-controller", "disruption-controller", "pod-garbage-collector-controller",
	"endpoints-controller", "endpointslice-controller", "endpointslice-mirroring-controller",
	"resourcequota-controller", "ephemeral-volume-controller",
	"persistentvolume-binder-controller", "persistentvolume-protection-controller",
	"persistentvolumeclaim-protection-controller",
	"validatingadmissionpolicy-status-controller", "service-cidr-controller",
}

// serviceCIDR is the Service ClusterIP range; its first address is the kubernetes Service's.
const serviceCIDR = "10.0.0.0/24"

type stateDir string

func (d stateDir) path(name string) string { return filepath.Join(string(d), name) }

func (d stateDir) writePEM(name, typ string, der []byte) {
	fail(os.WriteFile(d.path(name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

func (d stateDir) base64(name string) string {
	b, err := os.ReadFile(d.path(name))
	fail(err)
	return base64.StdEncoding.EncodeToString(b)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	fail(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startEtcd(d stateDir) (*embed.Etcd, url.URL) {
	cfg := embed.NewConfig()
	cfg.Dir = d.path("etcd")
	cfg.UnsafeNoFsync = true // test data: speed over durability
	cfg.LogLevel = "error"
	client := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(freePort())}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(freePort())}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	etcd, err := embed.StartEtcd(cfg)
	fail(err)
	select {
	case <-etcd.Server.ReadyNotify():
	case err := <-etcd.Err():
		fail(err)
	case <-time.After(60 * time.Second):
		fail(fmt.Errorf("etcd not ready after 60s"))
	}
	return etcd, client
}

// writeKubeconfig writes a kubeconfig for the client certificate <user>.crt/.key.
func writeKubeconfig(d stateDir, name, server, user string) {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubecluster
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: kubecluster
  context:
    cluster: kubecluster
    user: %s
current-context: kubecluster
`, server, d.base64("ca.crt"), user, d.base64(user+".crt"), d.base64(user+".key"), user)
	fail(os.WriteFile(d.path(name), []byte(kc), 0o600))
}

// adminClient is an HTTPS client of the API server with the admin certificate.
func adminClient(d stateDir, p *pki) *http.Client {
	pair, err := tls.LoadX509KeyPair(d.path("admin.crt"), d.path("admin.key"))
	fail(err)
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
}

// waitFor polls check every 200 ms until it returns true, failing after limit with what.
func waitFor(what string, limit time.Duration, check func() bool) {
	for deadline := time.Now().Add(limit); !check(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("%s after %s", what, limit))
		}
	}
}

func getOK(hc *http.Client, u string) bool {
	resp, err := hc.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// child starts this binary again as a subcommand, its output appended to <log>; it dies with us.
func child(d stateDir, log string, args ...string) *exec.Cmd {
	self, err := os.Executable()
	fail(err)
	c := exec.Command(self, args...)
	out, err := os.OpenFile(d.path(log), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	fail(err)
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return c
}

// apiserverArgs are the kube-apiserver flags; with a node, the kubernetes Service points at the node's
// side of the API server (the forwarder) and the API server can reach the kubelet.
func apiserverArgs(d stateDir, etcdURL url.URL, port int, n *nodeNet) []string {
	issuer := "https://kubernetes.default.svc.cluster.local"
	args := []string{
		"--etcd-servers=" + etcdURL.String(),
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + d.path("apiserver.crt"), "--tls-private-key-file=" + d.path("apiserver.key"),
		"--client-ca-file=" + d.path("ca.crt"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--service-account-issuer=" + issuer, "--api-audiences=" + issuer,
		"--service-account-key-file=" + d.path("sa.key"), "--service-account-signing-key-file=" + d.path("sa.key"),
		"--audit-policy-file=" + d.path("audit-policy.yaml"), "--audit-log-path=" + d.path("audit.log"),
		"--audit-log-mode=blocking",
		// As kubeadm and managed clusters run it: privileged pods are a policy decision, not an API refusal.
		"--allow-privileged=true",
	}
	if n == nil {
		return append(args, "--advertise-address=127.0.0.1", "--authorization-mode=RBAC", "--endpoint-reconciler-type=none")
	}
	return append(args,
		"--advertise-address="+n.nodeIP.String(), "--endpoint-reconciler-type=lease",
		"--authorization-mode=Node,RBAC",
		"--kubelet-client-certificate="+d.path("admin.crt"), "--kubelet-client-key="+d.path("admin.key"),
		"--kubelet-certificate-authority="+d.path("ca.crt"), "--kubelet-preferred-address-types=InternalIP")
}

func serve(dir string, extra []string) {
	abs, err := filepath.Abs(dir)
	fail(err)
	d := stateDir(abs)
	fail(os.MkdirAll(abs, 0o700))
	_ = os.Remove(d.path("ready"))
	fail(os.WriteFile(d.path("pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600))
	p := loadOrWritePKI(d)
	var n *nodeNet
	if bin := os.Getenv("KUBECLUSTER_NODE"); bin != "" {
		n = prepareNode(d, bin)
	}
	sans := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}
	if n != nil {
		sans = append(sans, n.nodeIP)
	}
	p.serving("apiserver", "kube-apiserver", []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, sans...)
	fail(os.WriteFile(d.path("audit-policy.yaml"),
		[]byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"), 0o600))

	etcd, etcdURL := startEtcd(d)
	fail(os.WriteFile(d.path("etcd-url"), []byte(etcdURL.String()+"\n"), 0o600))

	port := freePort()
	if v := os.Getenv("KUBECLUSTER_PORT"); v != "" {
		port, err = strconv.Atoi(v)
		fail(err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	apiCmd := apiserver.NewAPIServerCommand()
	apiCmd.SetArgs(append(apiserverArgs(d, etcdURL, port, n), extra...))
	go func() { code := cli.Run(apiCmd); etcd.Close(); os.Exit(code) }()

	writeKubeconfig(d, "admin.kubeconfig", server, "admin")
	hc := adminClient(d, p)
	waitFor("kube-apiserver not ready", 3*time.Minute, func() bool { return getOK(hc, server+"/readyz") })

	running := controllers
	if n != nil {
		// It lifts the not-ready taint the kubelet registers the node with, once the node is Ready.
		running = append(running, "node-lifecycle-controller")
	}
	kcm := child(d, "controller-manager.log", "controller-manager",
		"--kubeconfig="+d.path("admin.kubeconfig"), "--leader-elect=false", "--secure-port=0",
		"--controllers="+strings.Join(running, ","),
		"--service-account-private-key-file="+d.path("sa.key"), "--root-ca-file="+d.path("ca.crt"),
		"--concurrent-gc-syncs=20",
		// The default client throttle (20 QPS) lets the garbage collector fall tens of minutes
		// behind after a benchmark deletes thousands of grants; a test cluster has no reason to throttle.
		"--kube-api-qps=1000", "--kube-api-burst=2000")
	fail(kcm.Start())
	var node *runningNode
	if n != nil {
		node = startNode(d, p, n, port, hc, server)
	}

	fail(os.WriteFile(d.path("ready"), []byte(server+"\n"), 0o644))
	fmt.Println("kubecluster: ready at", server)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	if node != nil {
		node.stop()
	}
	_ = kcm.Process.Signal(syscall.SIGTERM)
	_, _ = kcm.Process.Wait()
	etcd.Close()
	os.Exit(0)
}

// extraAPIServer runs one more kube-apiserver over the serving cluster's etcd, CA and keys, on port,
// with its own audit log: one API server of a highly available cluster that is configured
// differently from its peer (e.g. --disable-admission-plugins), as a test needs it. It runs until
// signalled.
func extraAPIServer(dir string, port int, extra []string) {
	// Ends with the test process that started it, however that ends.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		fail(errno)
	}
	abs, err := filepath.Abs(dir)
	fail(err)
	d := stateDir(abs)
	raw, err := os.ReadFile(d.path("etcd-url"))
	fail(err)
	etcdURL, err := url.Parse(strings.TrimSpace(string(raw)))
	fail(err)
	args := apiserverArgs(d, *etcdURL, port, nil)
	// The last of a repeated flag wins: this server's audit log is its own.
	args = append(args, "--audit-log-path="+d.path(fmt.Sprintf("audit-%d.log", port)))
	apiCmd := apiserver.NewAPIServerCommand()
	apiCmd.SetArgs(append(args, extra...))
	os.Exit(cli.Run(apiCmd))
}
