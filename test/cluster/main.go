// Command kubecluster runs a real Kubernetes cluster for tests and the demo: embedded etcd and
// kube-apiserver in this process, kube-controller-manager as a child process, and with a node (when
// KUBECLUSTER_NODE names the directory of the node's binaries and images) kube-scheduler, containerd,
// kubelet and kube-proxy as child processes, the last three inside a network namespace of their own.
// Each Kubernetes component is a second run of this same binary, because each installs a
// process-wide signal handler and only one may exist per process.
//
//	kubecluster serve <stateDir> [apiserver flags]   start everything; writes <stateDir>/ready when usable
//	kubecluster apiserver <stateDir> <port> [apiserver flags]   one more API server of the serving cluster
//	kubecluster node-down <stateDir>                 remove what a node left: processes, mounts, network, cgroups
//	kubecluster oci-image <out.tar> <ref> <binary> [user]   a one-binary OCI image archive (deterministic)
//	kubecluster controller-manager|scheduler|kubelet|proxy [flags]   internal: the child processes
//	kubecluster exec-in-cgroup <cgroup> <binary> [args]   internal: how node processes start
//
// The state directory receives the CA, the admin kubeconfig (admin.kubeconfig), the audit log
// (audit.log, Metadata level for every request) and a pid file. Serving an existing state
// directory again reuses its CA, keys and etcd data (a restart keeps tokens and objects).
package main

import (
	"fmt"
	"os"
	"strconv"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecluster:", err)
		os.Exit(1)
	}
}

const usage = "usage: kubecluster serve <stateDir> [flags] | apiserver <stateDir> <port> [flags] | node-down <stateDir> | oci-image <out.tar> <ref> <binary> [user]"

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf(usage))
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		if len(args) < 1 {
			fail(fmt.Errorf(usage))
		}
		serve(args[0], args[1:])
	case "apiserver":
		if len(args) < 2 {
			fail(fmt.Errorf(usage))
		}
		port, err := strconv.Atoi(args[1])
		fail(err)
		extraAPIServer(args[0], port, args[2:])
	case "node-down":
		if len(args) != 1 {
			fail(fmt.Errorf(usage))
		}
		fail(nodeDown(args[0]))
	case "oci-image":
		if len(args) < 3 {
			fail(fmt.Errorf(usage))
		}
		user := "65532"
		if len(args) > 3 {
			user = args[3]
		}
		fail(writeOCIImage(args[0], args[1], args[2], user))
	case "exec-in-cgroup":
		if len(args) < 2 {
			fail(fmt.Errorf("usage: kubecluster exec-in-cgroup <cgroup> <binary> [args]"))
		}
		fail(execInCgroup(args[0], args[1], args[2:]))
	case "controller-manager":
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "scheduler":
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "kubelet":
		os.Exit(runKubelet(args))
	case "proxy":
		cmd := proxy.NewProxyCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	default:
		fail(fmt.Errorf("unknown subcommand %q", os.Args[1]))
	}
}
