package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupMounts are the mount points of this host's cgroup hierarchies (v1 ones and the v2 one).
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	for s := bufio.NewScanner(f); s.Scan(); {
		fields := strings.Fields(s.Text())
		for i, field := range fields {
			if field == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") {
				mounts = append(mounts, fields[4])
			}
		}
	}
	return mounts, nil
}

// nodeCgroup is the node's cgroup: under the memory cgroup this process runs in, so the node's memory
// counts where the tests' does, and the same path in every other hierarchy (the kubelet's cgroupfs
// driver wants one path for all).
func nodeCgroup(id string) (string, error) {
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	base := "/"
	for _, line := range strings.Split(string(raw), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && parts[1] == "memory" {
			base = parts[2]
		}
	}
	return filepath.Join(base, "k8s-ea-node-"+id), nil
}

// createCgroup makes path in every hierarchy and records each directory it created in record, so
// node-down removes exactly those. cpuset directories get their parent's CPUs and memory nodes (a new
// cpuset cgroup has none, and no process may join it).
func createCgroup(path, record string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	log, err := os.OpenFile(record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	for _, m := range mounts {
		dir := m
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); errors.Is(err, os.ErrExist) {
				continue
			} else if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(log, dir); err != nil {
				return err
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if v, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
					if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// joinCgroup moves this process into path in every hierarchy.
func joinCgroup(path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		procs := filepath.Join(m, path, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("join %s: %w", procs, err)
		}
	}
	return nil
}

// cgroupPids lists every process in path or below it, in one hierarchy (each process is in exactly one
// cgroup of each hierarchy, so one is enough).
func cgroupPids(hierarchy, path string) []int {
	var pids []int
	_ = filepath.WalkDir(filepath.Join(hierarchy, path), func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
			return nil
		}
		raw, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(raw)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}
