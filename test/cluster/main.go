// Command kubecluster runs a real Kubernetes control plane (no nodes) for tests and the demo:
// embedded etcd and kube-apiserver in this process, kube-controller-manager as a child process
// (a second run of this same binary, because each Kubernetes command installs a process-wide
// signal handler and only one may exist per process).
//
//	kubecluster serve <stateDir>              start everything; writes <stateDir>/ready when usable
//	kubecluster controller-manager [flags]    internal: the child process
//
// The state directory receives the CA, the admin kubeconfig (admin.kubeconfig), the audit log
// (audit.log, Metadata level for every request) and a pid file. Serving an existing state
// directory again reuses its PKI and etcd data (a restart keeps tokens and objects).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
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
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// controllers are the kube-controller-manager controllers that do their job without nodes or a cloud:
// what a real cluster does with the objects a job applies (Deployments get ReplicaSets and Pods, Services
// get EndpointSlices, Jobs get Pods), aggregated ClusterRoles get their rules, namespaces get
// kube-root-ca.crt. Left out: node controllers (node-lifecycle, node-ipam, ttl, taint-eviction,
// attach-detach: no nodes), cloud and certificate signing (no cloud, no signer keys), the
// horizontal-pod-autoscaler (no metrics API), bootstrap tokens (disabled by default in real clusters).
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

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecluster:", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: kubecluster serve <stateDir> | controller-manager [flags]"))
	}
	switch os.Args[1] {
	case "serve":
		if len(os.Args) < 3 {
			fail(fmt.Errorf("usage: kubecluster serve <stateDir> [extra kube-apiserver flags]"))
		}
		serve(os.Args[2], os.Args[3:])
	case "controller-manager":
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(os.Args[2:])
		os.Exit(cli.Run(cmd))
	default:
		fail(fmt.Errorf("unknown subcommand %q", os.Args[1]))
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	fail(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fail(err)
	return k
}

// issue signs tmpl for key with parent (self-signed when parent is nil).
func issue(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	fail(err)
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	fail(err)
	cert, err := x509.ParseCertificate(der)
	fail(err)
	return cert
}

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

// writePKI creates one CA that signs the serving certificate and the admin client certificate,
// plus the ServiceAccount token signing key.
func writePKI(d stateDir) *x509.Certificate {
	caKey, srvKey, admKey, saKey := newKey(), newKey(), newKey(), newKey()
	ca := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "kubecluster-ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, caKey, nil, nil)
	srv := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, srvKey, ca, caKey)
	adm := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "kubecluster-admin", Organization: []string{"system:masters"}},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, admKey, ca, caKey)
	d.writePEM("ca.crt", "CERTIFICATE", ca.Raw)
	d.writePEM("apiserver.crt", "CERTIFICATE", srv.Raw)
	d.writePEM("admin.crt", "CERTIFICATE", adm.Raw)
	for name, k := range map[string]*ecdsa.PrivateKey{"ca.key": caKey, "apiserver.key": srvKey, "admin.key": admKey, "sa.key": saKey} {
		der, err := x509.MarshalECPrivateKey(k)
		fail(err)
		d.writePEM(name, "EC PRIVATE KEY", der)
	}
	return ca
}

// loadOrWritePKI reuses the PKI of an earlier run in the same state directory, so a restarted
// control plane keeps its CA and ServiceAccount signing key: existing kubeconfigs and tokens stay
// valid (fault-injection tests restart the API server under a running broker). etcd reuses its
// data directory the same way.
func loadOrWritePKI(d stateDir) *x509.Certificate {
	for _, name := range []string{"ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "sa.key"} {
		if _, err := os.Stat(d.path(name)); err != nil {
			return writePKI(d)
		}
	}
	raw, err := os.ReadFile(d.path("ca.crt"))
	fail(err)
	block, _ := pem.Decode(raw)
	if block == nil {
		fail(fmt.Errorf("%s is not PEM", d.path("ca.crt")))
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	fail(err)
	return ca
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

func writeKubeconfig(d stateDir, server string) {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubecluster
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: kubecluster
  context:
    cluster: kubecluster
    user: admin
current-context: kubecluster
`, server, d.base64("ca.crt"), d.base64("admin.crt"), d.base64("admin.key"))
	fail(os.WriteFile(d.path("admin.kubeconfig"), []byte(kc), 0o600))
}

func waitReady(d stateDir, ca *x509.Certificate, server string) {
	pair, err := tls.LoadX509KeyPair(d.path("admin.crt"), d.path("admin.key"))
	fail(err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := hc.Get(server + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("kube-apiserver not ready after 3m"))
		}
	}
}

func serve(dir string, extra []string) {
	abs, err := filepath.Abs(dir)
	fail(err)
	d := stateDir(abs)
	fail(os.MkdirAll(abs, 0o700))
	_ = os.Remove(d.path("ready"))
	fail(os.WriteFile(d.path("pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600))
	ca := loadOrWritePKI(d)
	fail(os.WriteFile(d.path("audit-policy.yaml"),
		[]byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"), 0o600))

	etcd, etcdURL := startEtcd(d)

	port := freePort()
	if p := os.Getenv("KUBECLUSTER_PORT"); p != "" {
		port, err = strconv.Atoi(p)
		fail(err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	issuer := "https://kubernetes.default.svc.cluster.local"
	args := append([]string{
		"--etcd-servers=" + etcdURL.String(),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + d.path("apiserver.crt"), "--tls-private-key-file=" + d.path("apiserver.key"),
		"--client-ca-file=" + d.path("ca.crt"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=" + issuer, "--api-audiences=" + issuer,
		"--service-account-key-file=" + d.path("sa.key"), "--service-account-signing-key-file=" + d.path("sa.key"),
		"--audit-policy-file=" + d.path("audit-policy.yaml"), "--audit-log-path=" + d.path("audit.log"),
		"--audit-log-mode=blocking",
		"--endpoint-reconciler-type=none",
		// As kubeadm and managed clusters run it: privileged pods are a policy decision, not an API refusal.
		"--allow-privileged=true",
	}, extra...)
	apiCmd := apiserver.NewAPIServerCommand()
	apiCmd.SetArgs(args)
	go func() { code := cli.Run(apiCmd); etcd.Close(); os.Exit(code) }()

	writeKubeconfig(d, server)
	waitReady(d, ca, server)

	self, err := os.Executable()
	fail(err)
	kcm := exec.Command(self, "controller-manager",
		"--kubeconfig="+d.path("admin.kubeconfig"), "--leader-elect=false", "--secure-port=0",
		"--controllers="+strings.Join(controllers, ","),
		"--service-account-private-key-file="+d.path("sa.key"), "--root-ca-file="+d.path("ca.crt"),
		"--concurrent-gc-syncs=20",
		// The default client throttle (20 QPS) lets the garbage collector fall tens of minutes
		// behind after a benchmark deletes thousands of grants; a test cluster has no reason to throttle.
		"--kube-api-qps=1000", "--kube-api-burst=2000")
	kcmLog, err := os.OpenFile(d.path("controller-manager.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	fail(err)
	kcm.Stdout, kcm.Stderr = kcmLog, kcmLog
	// The child dies with us even if we are SIGKILLed.
	kcm.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	fail(kcm.Start())

	fail(os.WriteFile(d.path("ready"), []byte(server+"\n"), 0o644))
	fmt.Println("kubecluster: ready at", server)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = kcm.Process.Signal(syscall.SIGTERM)
	_, _ = kcm.Process.Wait()
	etcd.Close()
	os.Exit(0)
}
