package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/component-base/cli"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// nodeNet is where one node lives: its network namespace and the link to it, its directories and
// cgroup, all named after a hash of the state directory so that clusters on one machine never meet.
type nodeNet struct {
	id     string
	bin    string // the node's binaries (containerd, runc, cni/) and images/
	dir    string // <stateDir>/node: everything the node writes
	run    string // its sockets (short paths)
	netns  string // the pinned network namespace
	hostIf string // host side of the link; "eth0" inside
	hostIP net.IP
	nodeIP net.IP
	cgroup string
	api    net.Listener // the API server's forwarder inside the namespace
}

func (n *nodeNet) containerdSock() string { return filepath.Join(n.run, "containerd.sock") }
func (n *nodeNet) cniNetwork() string     { return "k8s-ea-" + n.id }

func nodeID(d stateDir) string {
	sum := sha256.Sum256([]byte(string(d)))
	return fmt.Sprintf("%x", sum[:4])
}

// linkAddresses picks the /30 of the node's link in 198.18.0.0/16 (of the range reserved for
// benchmark networks, never routed on the internet; link-local addresses would be simpler, but a
// Node's and an Endpoints' addresses may not be link-local), the same one every time for this state
// directory unless another interface has it. Nothing listens on the host's end of the link.
func linkAddresses(d stateDir, id string) (host, node net.IP) {
	if raw, err := os.ReadFile(d.path("node-link")); err == nil {
		if f := strings.Fields(string(raw)); len(f) == 2 {
			return net.ParseIP(f[0]).To4(), net.ParseIP(f[1]).To4()
		}
	}
	taken := map[string]bool{}
	addrs, err := net.InterfaceAddrs()
	fail(err)
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			taken[ipn.IP.Mask(net.CIDRMask(30, 32)).String()] = true
		}
	}
	h := binary.BigEndian.Uint32([]byte(id[:4]))
	for i := uint32(0); ; i++ {
		slot := (h + i) % (256 * 64)
		base := net.IPv4(198, 18, byte(slot/64), byte(slot%64*4)).To4()
		if !taken[base.String()] {
			host, node = net.IPv4(base[0], base[1], base[2], base[3]+1).To4(), net.IPv4(base[0], base[1], base[2], base[3]+2).To4()
			fail(os.WriteFile(d.path("node-link"), []byte(host.String()+" "+node.String()+"\n"), 0o600))
			return host, node
		}
	}
}

// run runs a command and fails with its output.
func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runIn runs a command inside the node's network namespace.
func (n *nodeNet) runIn(name string, args ...string) error {
	c := exec.Command(name, args...)
	var out strings.Builder
	c.Stdout, c.Stderr = &out, &out
	exited, err := startIn(n.netns, c, false, nil)
	if err != nil {
		return err
	}
	<-exited
	if !c.ProcessState.Success() {
		return fmt.Errorf("%s %s (in the node): %v: %s", name, strings.Join(args, " "), c.ProcessState, strings.TrimSpace(out.String()))
	}
	return nil
}

// prepareNode clears what an earlier node of this state directory left, then creates the network
// namespace, the link to it and the cgroup; the control plane starts after this (its certificate and
// its advertised address name the node's side of the link).
func prepareNode(d stateDir, bin string) *nodeNet {
	fail(nodeDown(string(d)))
	id := nodeID(d)
	n := &nodeNet{id: id, bin: bin, dir: d.path("node"), run: "/run/k8s-ea-" + id, hostIf: "k8sea" + id}
	n.netns = filepath.Join(n.dir, "netns")
	n.hostIP, n.nodeIP = linkAddresses(d, id)
	cg, err := nodeCgroup(id)
	fail(err)
	n.cgroup = cg
	fail(os.MkdirAll(n.dir, 0o700))
	fail(os.WriteFile(filepath.Join(n.dir, "cgroup"), []byte(cg+"\n"), 0o600))
	fail(createCgroup(cg+"/runtime", filepath.Join(n.dir, "cgroups-created")))
	fail(createNetns(n.netns))
	steps := []func() error{
		func() error { return n.runIn("ip", "link", "set", "lo", "up") },
		func() error {
			return run("ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", "eth0", "netns", n.netns)
		},
		func() error { return run("ip", "addr", "add", n.hostIP.String()+"/30", "dev", n.hostIf) },
		func() error { return run("ip", "link", "set", n.hostIf, "up") },
		func() error { return n.runIn("ip", "addr", "add", n.nodeIP.String()+"/30", "dev", "eth0") },
		func() error { return n.runIn("ip", "link", "set", "eth0", "up") },
		// Locally started connections to a ClusterIP need a route before kube-proxy rewrites them.
		func() error { return n.runIn("ip", "route", "add", serviceCIDR, "dev", "eth0") },
		func() error {
			return n.runIn("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1")
		},
		// Pods never open a connection off the node: their traffic stays in this namespace.
		func() error {
			return n.runIn("iptables", "-w", "-A", "FORWARD", "-s", podCIDR, "-o", "eth0",
				"-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
		},
	}
	for _, step := range steps {
		fail(step())
	}
	return n
}

// forwardAPIServer makes the API server, which listens on the host's loopback only, reachable inside
// the node's namespace at nodeIP:port: the kubelet, kube-proxy and pods (through the kubernetes
// Service) connect there. It relays bytes; TLS stays end to end.
func (n *nodeNet) forwardAPIServer(port int) {
	var l net.Listener
	fail(inNetns(n.netns, func() (err error) {
		l, err = net.Listen("tcp", net.JoinHostPort(n.nodeIP.String(), strconv.Itoa(port)))
		return err
	}))
	n.api = l
	target := "127.0.0.1:" + strconv.Itoa(port)
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go relay(in, target)
		}
	}()
}

func relay(in net.Conn, target string) {
	defer in.Close()
	out, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); in.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

type runningNode struct {
	n         *nodeNet
	d         stateDir
	processes []process
}

// process is a node process and a channel that closes when it has exited.
type process struct {
	cmd    *exec.Cmd
	exited <-chan struct{}
}

// startInNode starts c in the node's network namespace and keeps it for stop.
func (r *runningNode) startInNode(c *exec.Cmd, privateMounts bool, prepare func() error) {
	exited, err := startIn(r.n.netns, c, privateMounts, prepare)
	fail(err)
	r.processes = append(r.processes, process{c, exited})
}

// nodeChild is a node process started inside the node's cgroup (it joins before it runs anything).
func (n *nodeNet) nodeChild(d stateDir, log, binary string, args ...string) *exec.Cmd {
	c := child(d, log, append([]string{"exec-in-cgroup", n.cgroup + "/runtime", binary}, args...)...)
	c.Env = append(os.Environ(), "PATH="+n.bin+":"+os.Getenv("PATH"))
	return c
}

// startNode starts the scheduler, containerd (and imports the images), the kubelet and kube-proxy,
// and waits until the Node is Ready.
func startNode(d stateDir, p *pki, n *nodeNet, apiPort int, hc *http.Client, server string) *runningNode {
	started := time.Now()
	nodeFiles(d, p, n, apiPort)
	n.forwardAPIServer(apiPort)
	r := &runningNode{n: n, d: d}
	self, err := os.Executable()
	fail(err)

	sched := child(d, "scheduler.log", "scheduler", "--kubeconfig="+d.path("admin.kubeconfig"),
		"--leader-elect=false", "--secure-port=0")
	fail(sched.Start())
	schedExited := make(chan struct{})
	go func() { _ = sched.Wait(); close(schedExited) }()
	r.processes = append(r.processes, process{sched, schedExited})

	ctrd := n.nodeChild(d, "node/containerd.log", filepath.Join(n.bin, "containerd"), "--config", filepath.Join(n.dir, "containerd/config.toml"))
	r.startInNode(ctrd, false, nil)
	waitFor("containerd not serving", 60*time.Second, func() bool {
		c, err := net.Dial("unix", n.containerdSock())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	fail(n.importImages())

	kubeletRoot := filepath.Join(n.dir, "kubelet")
	fail(makeShared(kubeletRoot))
	kl := n.nodeChild(d, "node/kubelet.log", self, "kubelet",
		"--config="+filepath.Join(kubeletRoot, "config.yaml"), "--kubeconfig="+filepath.Join(n.dir, "kubelet.kubeconfig"),
		"--hostname-override="+nodeName, "--node-ip="+n.nodeIP.String(),
		"--root-dir="+kubeletRoot, "--cert-dir="+filepath.Join(n.dir, "kubelet-pki"))
	r.startInNode(kl, true, kubeletMounts(n.dir))

	kp := n.nodeChild(d, "node/kube-proxy.log", self, "proxy", "--config="+filepath.Join(n.dir, "proxy.yaml"))
	r.startInNode(kp, false, nil)

	waitFor("node "+nodeName+" not Ready", 3*time.Minute, func() bool { return nodeReady(hc, server) })
	info, err := json.Marshal(map[string]string{"name": nodeName, "netns": n.netns, "nodeIP": n.nodeIP.String(),
		"hostIP": n.hostIP.String(), "link": n.hostIf, "cgroup": n.cgroup, "runDir": n.run,
		"cniNetwork": n.cniNetwork(), "containerdSocket": n.containerdSock(), "ctr": filepath.Join(n.bin, "ctr")})
	fail(err)
	fail(os.WriteFile(filepath.Join(n.dir, "info.json"), info, 0o644))
	fmt.Printf("kubecluster: node %s Ready in %.1f s\n", nodeName, time.Since(started).Seconds())
	return r
}

// pinnedLabel keeps an imported image from the kubelet's image garbage collection (it cannot be
// pulled again).
const pinnedLabel = "io.cri-containerd.pinned=pinned"

// importImages imports every OCI archive in <bin>/images into containerd's k8s.io namespace.
func (n *nodeNet) importImages() error {
	archives, _ := filepath.Glob(filepath.Join(n.bin, "images", "*.tar"))
	for _, a := range archives {
		if err := run(filepath.Join(n.bin, "ctr"), "--address", n.containerdSock(), "-n", "k8s.io", "images", "import",
			"--label", pinnedLabel, a); err != nil {
			return err
		}
	}
	return nil
}

func nodeReady(hc *http.Client, server string) bool {
	resp, err := hc.Get(server + "/api/v1/nodes/" + nodeName)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status string } `json:"conditions"`
		} `json:"status"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&node) != nil {
		return false
	}
	for _, c := range node.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// stop ends the node's processes, then removes everything the node made.
func (r *runningNode) stop() {
	for _, p := range r.processes {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range r.processes {
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
	_ = r.n.api.Close()
	if err := nodeDown(string(r.d)); err != nil {
		fmt.Fprintln(os.Stderr, "kubecluster: node-down:", err)
	}
}

func runKubelet(args []string) int {
	cmd := kubelet.NewKubeletCommand(context.Background())
	cmd.SetArgs(args)
	return cli.Run(cmd)
}
