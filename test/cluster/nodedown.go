package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cniCache is where libcni keeps each attachment's result (containerd gives it no other place);
// files of this node's network carry its name.
const cniCache = "/var/lib/cni"

// nodeDown removes everything a node of this state directory made, whether it stopped cleanly or
// not: its processes (containerd, shims, containers, kubelet, kube-proxy: all in its cgroup), its
// mounts, its link and network namespace, its cgroups, its sockets and files. Harmless when there is
// no node.
func nodeDown(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	d := stateDir(abs)
	id := nodeID(d)
	nodeDir, runDir := d.path("node"), "/run/k8s-ea-"+id
	raw, _ := os.ReadFile(filepath.Join(nodeDir, "cgroup"))
	cg := strings.TrimSpace(string(raw))
	var errs []error
	if cg != "" {
		errs = append(errs, killCgroup(cg))
	}
	errs = append(errs, unmountUnder(nodeDir, runDir))
	if _, err := net.InterfaceByName("k8sea" + id); err == nil {
		errs = append(errs, run("ip", "link", "del", "k8sea"+id))
	}
	if cg != "" {
		errs = append(errs, removeCgroup(cg, filepath.Join(nodeDir, "cgroups-created")))
	}
	results, _ := filepath.Glob(filepath.Join(cniCache, "results", "k8s-ea-"+id+"-*"))
	for _, f := range results {
		errs = append(errs, os.Remove(f))
	}
	// Only if empty: other nodes on this machine may be using them.
	_ = os.Remove(filepath.Join(cniCache, "results"))
	_ = os.Remove(cniCache)
	if left := mountsUnder(nodeDir, runDir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted: %s", strings.Join(left, ", ")))
	} else {
		errs = append(errs, os.RemoveAll(runDir), os.RemoveAll(nodeDir))
	}
	return errors.Join(errs...)
}

// killCgroup SIGKILLs every process in the node's cgroup until none is left.
func killCgroup(cg string) error {
	mounts, err := cgroupMounts()
	if err != nil || len(mounts) == 0 {
		return err
	}
	for i := 0; i < 100; i++ {
		pids := cgroupPids(mounts[0], cg)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("processes left in cgroup %s: %v", cg, cgroupPids(mounts[0], cg))
}

// mountsUnder lists the mount points at or below any of dirs, deepest first.
func mountsUnder(dirs ...string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var found []string
	for s := bufio.NewScanner(f); s.Scan(); {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		for _, dir := range dirs {
			if mp == dir || strings.HasPrefix(mp, dir+"/") {
				found = append(found, mp)
			}
		}
	}
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found
}

// unescapeMount decodes mountinfo's octal escapes (\040 is a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount below dirs (overlay root filesystems, volume tmpfs, pinned
// network namespaces, the kubelet's shared bind), repeating for mounts stacked on one point.
func unmountUnder(dirs ...string) error {
	for i := 0; i < 10; i++ {
		mps := mountsUnder(dirs...)
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			_ = unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	return fmt.Errorf("cannot unmount: %s", strings.Join(mountsUnder(dirs...), ", "))
}

// removeCgroup removes the node's cgroup tree in every hierarchy, deepest first, then the parent
// directories prepareNode created (listed in record), when nothing else uses them.
func removeCgroup(cg, record string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(m, cg), func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	raw, _ := os.ReadFile(record)
	created := strings.Fields(string(raw))
	for i := len(created) - 1; i >= 0; i-- {
		_ = unix.Rmdir(created[i])
	}
	return errors.Join(errs...)
}
