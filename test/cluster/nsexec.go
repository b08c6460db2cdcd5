package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// The main goroutine keeps the main thread: goroutines that enter namespaces (below) then never run
// on it, and /proc/self/ns (the main thread's) always shows this process's own namespaces.
func init() { runtime.LockOSThread() }

// onOwnThread runs fn on a thread locked to a new goroutine and never unlocked: namespaces belong to
// threads, and when that goroutine ends the runtime retires the thread with whatever namespaces fn
// entered instead of reusing it. No other thread of this process ever sees them.
func onOwnThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

// enterNetns moves the calling (locked) thread into the network namespace pinned at path.
func enterNetns(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter the node's network namespace: %w", err)
	}
	return nil
}

// inNetns runs fn inside the network namespace pinned at path (sockets it opens stay there).
func inNetns(path string, fn func() error) error {
	return onOwnThread(func() error {
		if err := enterNetns(path); err != nil {
			return err
		}
		return fn()
	})
}

// startIn starts c inside the network namespace pinned at netns: the fork happens on a thread that
// entered it, and the child inherits that thread's namespaces. With privateMounts, the child also
// gets a mount namespace of its own, prepared by prepare first: mounts there stay there, except
// under shared mount points. The returned channel closes when the child has exited (c.ProcessState).
func startIn(netns string, c *exec.Cmd, privateMounts bool, prepare func() error) (<-chan struct{}, error) {
	errc, exited := make(chan error, 1), make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked, see onOwnThread
		err := func() error {
			if privateMounts {
				if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
					return fmt.Errorf("unshare mount namespace: %w", err)
				}
				if err := prepare(); err != nil {
					return err
				}
			}
			if err := enterNetns(netns); err != nil {
				return err
			}
			return c.Start()
		}()
		errc <- err
		if err == nil {
			// A child's parent-death signal (Pdeathsig) fires when the thread that forked it ends:
			// this thread lives as long as the child.
			_ = c.Wait()
		}
		close(exited)
	}()
	return exited, <-errc
}

// createNetns creates a network namespace and pins it by a bind mount at path, so it outlives every
// process in it until node-down unmounts it.
func createNetns(path string) error {
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return err
	}
	return onOwnThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare network namespace: %w", err)
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		return unix.Mount(self, path, "", unix.MS_BIND, "")
	})
}

// kubeletMounts prepares the kubelet's private mount namespace: the kernel settings it checks read
// as it wants them (so it never writes the host's, with protectKernelDefaults), and /var/log is an
// empty tmpfs there (its fixed /var/log/containers links land in it, not on the host).
func kubeletMounts(dir string) func() error {
	return func() error {
		// Nothing below may reach the host's mount namespace: / is private on this host, but a
		// shared one would carry these mounts back.
		if err := unix.Mount("", "/proc", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make /proc private: %w", err)
		}
		if err := unix.Mount("", "/var/log", "", unix.MS_PRIVATE, ""); err != nil && err != unix.EINVAL {
			return fmt.Errorf("make /var/log private: %w", err)
		}
		for file, value := range kubeletSysctls {
			fake := filepath.Join(dir, "sysctl-"+filepath.Base(file))
			if err := os.WriteFile(fake, []byte(value+"\n"), 0o444); err != nil {
				return err
			}
			if err := unix.Mount(fake, file, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("mask %s: %w", file, err)
			}
		}
		return unix.Mount("tmpfs", "/var/log", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16m")
	}
}

// kubeletSysctls are the kernel settings the kubelet insists on (pkg/kubelet/cm setupKernelTunables),
// with the values it wants; without protectKernelDefaults it would write them to the host.
var kubeletSysctls = map[string]string{
	"/proc/sys/vm/overcommit_memory":      "1",
	"/proc/sys/vm/panic_on_oom":           "0",
	"/proc/sys/kernel/panic":              "10",
	"/proc/sys/kernel/panic_on_oops":      "1",
	"/proc/sys/kernel/keys/root_maxkeys":  "1000000",
	"/proc/sys/kernel/keys/root_maxbytes": "25000000",
}

// makeShared turns dir into a shared mount point (a bind mount onto itself), so mounts the kubelet
// makes there from its own mount namespace show in the host's, where containerd and runc look.
func makeShared(dir string) error {
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	return unix.Mount("", dir, "", unix.MS_SHARED, "")
}

// execInCgroup is the node children's entry point: join the node's cgroup, then become the program.
func execInCgroup(cgroup, binary string, args []string) error {
	if err := joinCgroup(cgroup); err != nil {
		return err
	}
	return syscall.Exec(binary, append([]string{binary}, args...), os.Environ())
}
