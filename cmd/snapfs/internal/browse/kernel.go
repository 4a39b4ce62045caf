package browse

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/rowstore"
)

// Loop device flags (linux/loop.h).
const (
	loFlagsAutoclear = 4
)

type loopDev struct {
	dev string
	f   *os.File
}

func (l *loopDev) close() {
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

// attachLoop attaches the range [offset, offset+size) of file (size 0: to
// its end) to a free loop device, writable (a dirty journal is replayed
// into the scratch clone), with autoclear (the kernel detaches it when its
// last user, the mount, goes). A partition gets a loop device of its own
// over its range, found by Probe: the kernel's partition scanning is not
// used, as kernels built without partition table support (seen: 6.18 with
// neither CONFIG_EFI_PARTITION nor CONFIG_MSDOS_PARTITION) ignore it. The
// returned device is held open until close: it is not autocleared before
// the mount holds it.
func attachLoop(file string, offset, size int64) (*loopDev, error) {
	back, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("files: open scratch clone: %w", err)
	}
	defer back.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("files: loop devices: %w", err)
	}
	defer ctl.Close()
	var last error
	for tries := 0; tries < 50; tries++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("files: no free loop device: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		if err := waitDevice(dev, 2*time.Second); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			last = err
			continue
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
		cfg.Info.Flags = loFlagsAutoclear
		cfg.Info.Offset, cfg.Info.Sizelimit = uint64(offset), uint64(size)
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], file)
		if err := unix.IoctlLoopConfigure(int(f.Fd()), &cfg); err != nil {
			f.Close()
			last = err
			if errors.Is(err, unix.EBUSY) {
				continue // another process took it first
			}
			return nil, fmt.Errorf("files: configure %s: %w", dev, err)
		}
		return &loopDev{dev: dev, f: f}, nil
	}
	return nil, fmt.Errorf("files: no loop device could be attached: %w", last)
}

// loopBacking is the backing file of a loop device ("" when detached),
// without the kernel's " (deleted)" suffix.
func loopBacking(dev string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
}

// detachLoop detaches dev if it is still backed by the scratch clone clone
// (autoclear may have detached it already, and another user may hold the
// number since).
func detachLoop(dev, clone string) error {
	b := loopBacking(dev)
	if b == "" || !strings.HasSuffix(b, "/disks/"+clone) {
		return nil
	}
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return err
	}
	return nil
}

// waitDevice waits for a device node to appear (devtmpfs creates the
// nodes of a new loop device or partition asynchronously).
func waitDevice(dev string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(dev); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("files: %s did not appear", dev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mountOptions are the filesystem-specific options of a .files mount:
//   - ext4: errors=remount-ro, overriding an "errors=panic" a hostile
//     image may carry in its superblock;
//   - xfs: nouuid, because the clone has the UUID of its origin, which may
//     be mounted (XFS refuses a duplicate UUID otherwise);
//   - btrfs: nothing (a clone with a duplicate fsid is mounted with a
//     temporary fsid by Linux 6.7 and later).
func mountOptions(fstype string) string {
	switch fstype {
	case "ext4":
		return "errors=remount-ro"
	case "xfs":
		return "nouuid"
	}
	return ""
}

// mountFS mounts dev on mp read-only, nodev, nosuid, noexec; a mount that
// takes longer than timeout fails (and is detached if it ever completes).
// The device is writable: a journal that needs replay is replayed into the
// scratch clone by the kernel, so what is shown is the filesystem after
// replay, and the snapshot itself is never written.
func mountFS(dev, mp, fstype string, timeout time.Duration) error {
	flags := uintptr(unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC)
	done := make(chan error, 1)
	go func() { done <- unix.Mount(dev, mp, fstype, flags, mountOptions(fstype)) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("mount %s %s: %w", fstype, dev, err)
		}
		return nil
	case <-time.After(timeout):
		go func() {
			if <-done == nil {
				_ = unix.Unmount(mp, unix.MNT_DETACH)
			}
		}()
		return fmt.Errorf("mount %s %s: no answer after %v", fstype, dev, timeout)
	}
}

// MountImage attaches the range of part p of file (a scratch clone's disk
// file; p.Name "" is the whole disk) to a loop device of its own and mounts
// its filesystem (p.FSType) read-only at mp: the steps of a .files mount,
// shared with snapshot mount. It returns the loop device, which autoclears
// when the mount goes. On error nothing is left.
func MountImage(file string, p Part, mp string, timeout time.Duration) (string, error) {
	size := p.Size
	if p.Name == "" {
		size = 0 // the whole disk
	}
	loop, err := attachLoop(file, p.Offset, size)
	if err != nil {
		return "", err
	}
	defer loop.close() // autoclear: the mount holds the device from here on
	if err := mountFS(loop.dev, mp, p.FSType, timeout); err != nil {
		loop.close()
		_ = detachLoopOf(loop.dev, file)
		return "", err
	}
	return loop.dev, nil
}

// UnmountImage undoes MountImage: it unmounts mp (lazily when lazy and it
// stays busy; otherwise a busy mount is ErrBusy) and detaches loop if it is
// still backed by the scratch clone named clone.
func UnmountImage(mp, loop, clone string, lazy bool) error {
	if lazy {
		if err := unmount(mp); err != nil {
			return err
		}
	} else if err := unmountBusy(mp); err != nil {
		return err
	}
	if loop != "" {
		return detachLoop(loop, clone)
	}
	return nil
}

// unmountBusy unmounts mp, retrying for half a second while it is busy;
// not mounted is fine; still busy is ErrBusy.
func unmountBusy(mp string) error {
	for i := 0; i < 10; i++ {
		err := unix.Unmount(mp, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%w: %s is in use; close what uses it and try again", rowstore.ErrBusy, mp)
}

// detachLoopOf detaches dev if file backs it.
func detachLoopOf(dev, file string) error {
	if loopBacking(dev) != file {
		return nil
	}
	return detachLoop(dev, filepath.Base(file))
}

// unmount unmounts mp, waiting up to a second while it is busy, then
// detaching it lazily (a stuck or busy mount never blocks the daemon).
func unmount(mp string) error {
	for i := 0; i < 20; i++ {
		err := unix.Unmount(mp, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w: unmount %s: %w", rowstore.ErrBusy, mp, err)
	}
	return nil
}

// Clean undoes the mounts a dead daemon left under dir (Options.Dir) and
// removes its empty directories. It is called at daemon start, before the
// scratch clones and their loop devices are removed (service.CleanScratch).
func Clean(dir string, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var targets []string
	for _, m := range procMounts() {
		if strings.HasPrefix(m[1], dir+"/") {
			targets = append(targets, m[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(targets))) // deepest first
	for _, mp := range targets {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			log.Warn("unmount stale .files mount", "mountpoint", mp, "err", err)
		} else {
			log.Info("unmounted stale .files mount", "mountpoint", mp)
		}
	}
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		sub := filepath.Join(dir, e.Name())
		subs, _ := os.ReadDir(sub)
		for _, s := range subs {
			_ = os.Remove(filepath.Join(sub, s.Name())) // empty mountpoints only
		}
		_ = os.Remove(sub)
	}
}

// procMounts lists (source, target) of /proc/self/mounts.
func procMounts() [][2]string {
	data, _ := os.ReadFile("/proc/self/mounts")
	var out [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 2 {
			out = append(out, [2]string{f[0], strings.ReplaceAll(f[1], `\040`, " ")})
		}
	}
	return out
}
