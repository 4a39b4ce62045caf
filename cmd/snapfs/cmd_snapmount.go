package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// snapMount is the record of a snapshot mount, <store>/snapmounts/<key>.json:
// what snapshot umount must undo.
type snapMount struct {
	// Version of this record's format (snapMountVersion); a newer one is
	// refused rather than misread.
	Version    int       `json:"version"`
	Mountpoint string    `json:"mountpoint"`
	Snapshot   string    `json:"snapshot"`
	Disk       string    `json:"disk"`
	Clone      string    `json:"clone"` // the throw-away disk
	Loop       string    `json:"loop"`  // the loop device
	FSType     string    `json:"fstype,omitempty"`
	Created    time.Time `json:"created"`
	// MadeMountpoint: snapshot mount created the mountpoint directory;
	// snapshot umount removes it (absent in older records: kept).
	MadeMountpoint bool `json:"made_mountpoint,omitempty"`
}

const (
	snapMountDir     = "snapmounts"
	snapMountVersion = 1
)

func snapMountPath(store, mountpoint string) string {
	h := sha256.Sum256([]byte(mountpoint))
	return filepath.Join(store, snapMountDir, hex.EncodeToString(h[:8])+".json")
}

func snapshotMountCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "mount",
		Usage: "mount the filesystem inside a snapshot's disk read-only at MOUNTPOINT, through a throw-away " +
			"writable clone (so a dirty ext4 or xfs journal replays); needs a running daemon",
		ArgsUsage: "NAME MOUNTPOINT",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "disk", Usage: "the disk of the snapshot"},
			&cli.StringFlag{Name: "fstype", Usage: "filesystem type (default: detected by mount)"},
		},
		Action: func(c *cli.Context) (retErr error) {
			a, err := args(c, "NAME", "MOUNTPOINT")
			if err != nil {
				return err
			}
			if !c.IsSet("disk") {
				return usagef("snapshot mount: --disk is required")
			}
			snap, disk, fstype := a[0], c.String("disk"), c.String("fstype")
			if err := errors.Join(rowstore.ValidateName("snapshot", snap), rowstore.ValidateName("disk", disk)); err != nil {
				return err
			}
			if strings.ContainsAny(fstype, ", ") {
				return usagef("snapshot mount: --fstype %q is not a filesystem type", fstype)
			}
			_, lerr := os.Lstat(a[1])
			madeMountpoint := errors.Is(lerr, os.ErrNotExist)
			mp, rmdir, err := existingDir(a[1])
			if err != nil {
				return err
			}
			defer func() {
				if retErr != nil {
					rmdir()
				}
			}()
			store, err := storeDir(c)
			if err != nil {
				return err
			}
			rec := snapMountPath(store, mp)
			if _, err := os.Stat(rec); err == nil {
				return fmt.Errorf("%w: a snapshot is already mounted at %s (snapfs snapshot umount %s)", rowstore.ErrExists, mp, mp)
			}
			if mounted(mp) {
				return fmt.Errorf("%w: something is already mounted at %s", rowstore.ErrBusy, mp)
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) (err error) {
				status, err := svc.Status(ctx)
				if err != nil {
					return err
				}
				if !status.Daemon {
					return fmt.Errorf("%w: snapshot mount needs a running daemon for store %s (start one with snapfs mount --background MOUNTPOINT)", exitcode.ErrNoDaemon, store)
				}
				var undo []func()
				defer func() {
					if err != nil {
						for i := len(undo) - 1; i >= 0; i-- {
							undo[i]()
						}
					}
				}()
				// Ctrl-C or SIGTERM while the steps run must not leave a
				// clone, loop device or mount without a record: the signal
				// is held until the current step ends, then everything done
				// so far is undone.
				sigc := make(chan os.Signal, 1)
				signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
				defer signal.Stop(sigc)
				interrupted := func() error {
					select {
					case sig := <-sigc:
						return fmt.Errorf("snapshot mount interrupted by %v; undone", sig)
					default:
						return nil
					}
				}
				clone, err := svc.CreateScratchClone(ctx, snap, disk)
				if err != nil {
					return err
				}
				if err := interrupted(); err != nil {
					undo = append(undo, func() { dropScratch(svc, store, clone.Name) })
					return err
				}
				undo = append(undo, func() { dropScratch(svc, store, clone.Name) })
				killPointForTest("clone")
				file := filepath.Join(status.Mountpoint, "disks", clone.Name)
				loop, err := runTool("losetup", "-f", "--show", file)
				if err != nil {
					return err
				}
				undo = append(undo, func() { _, _ = runTool("losetup", "-d", loop) })
				killPointForTest("loop")
				if err := interrupted(); err != nil {
					return err
				}
				opts := "ro"
				fs := fstype
				if fs == "" { // what is on it, for the options below
					fs, _ = runTool("blkid", "-o", "value", "-s", "TYPE", loop)
					fs = strings.TrimSpace(fs)
				}
				if fs == "xfs" {
					// The clone has the UUID of the original, which may be
					// mounted: XFS refuses a duplicate UUID unless told.
					opts += ",nouuid"
				}
				margs := []string{"-o", opts}
				if fstype != "" {
					margs = append(margs, "-t", fstype)
				}
				if _, err := runTool("mount", append(margs, loop, mp)...); err != nil {
					return err
				}
				undo = append(undo, func() { _ = unmountRetry(mp) })
				killPointForTest("mount")
				if err := interrupted(); err != nil {
					return err
				}
				m := snapMount{Version: snapMountVersion, Mountpoint: mp, Snapshot: snap, Disk: disk, Clone: clone.Name, Loop: loop, FSType: fstype, Created: time.Now().UTC(), MadeMountpoint: madeMountpoint}
				if err := writeJSONFile(rec, m); err != nil {
					return err
				}
				killPointForTest("record")
				return newPrinter(c, st).result("snapmount", m, "mounted %s/%s read-only at %s (clone %s on %s)", snap, disk, mp, clone.Name, loop)
			})
		},
	}
}

func snapshotUmountCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Usage:     "unmount a snapshot mounted with snapshot mount, and discard its clone",
		ArgsUsage: "MOUNTPOINT",
		Action: func(c *cli.Context) error {
			a, err := args(c, "MOUNTPOINT")
			if err != nil {
				return err
			}
			mp, err := cleanPath(a[0])
			if err != nil {
				return err
			}
			store, err := storeDir(c)
			if err != nil {
				return err
			}
			rec := snapMountPath(store, mp)
			var m snapMount
			data, err := os.ReadFile(rec)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%w: no snapshot of store %s is mounted at %s", rowstore.ErrNotFound, store, mp)
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", rec, err)
			}
			if err := json.Unmarshal(data, &m); err != nil {
				return fmt.Errorf("%w: %s: %v", rowstore.ErrCorrupt, rec, err)
			}
			if m.Version > snapMountVersion {
				return fmt.Errorf("%w: %s was written by a newer snapfs (record version %d)", rowstore.ErrIncompatible, rec, m.Version)
			}
			if err := unmountRetry(mp); err != nil {
				return err
			}
			// The loop device is ours if it is still backed by the clone (the
			// kernel appends " (deleted)" when the file's dentry was dropped).
			if backing, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(m.Loop), "loop/backing_file")); err == nil &&
				strings.HasSuffix(strings.TrimSuffix(strings.TrimSpace(string(backing)), " (deleted)"), "/"+m.Clone) {
				if _, err := runTool("losetup", "-d", m.Loop); err != nil {
					return fmt.Errorf("detach %s (the clone %s is kept): %w", m.Loop, m.Clone, err)
				}
			}
			err = withService(c, st, func(ctx context.Context, svc service.Service) error {
				err := svc.DeleteDisk(ctx, m.Clone, true)
				if errors.Is(err, rowstore.ErrNotFound) {
					err = nil
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("unmounted %s, but deleting its clone %s failed (delete it with snapfs disk delete --force %s): %w", mp, m.Clone, m.Clone, err)
			}
			if err := service.ForgetScratch(store, m.Clone); err != nil {
				return fmt.Errorf("unmounted %s and deleted its clone, but: %w", mp, err)
			}
			if err := os.Remove(rec); err != nil {
				return fmt.Errorf("remove %s: %w", rec, err)
			}
			if m.MadeMountpoint {
				_ = os.Remove(mp) // only when still empty
			}
			return newPrinter(c, st).result("snapumount", m, "unmounted %s and discarded clone %s", mp, m.Clone)
		},
	}
}

// killPointForTest SIGKILLs this process at the named step of snapshot
// mount when SNAPFS_TEST_KILL_AT names it: the integration tests' way to
// kill the command between two steps, deterministically.
func killPointForTest(step string) {
	if os.Getenv("SNAPFS_TEST_KILL_AT") == step {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// dropScratch deletes a scratch clone and its ledger entry (best effort:
// what is left is cleaned at the next daemon start).
func dropScratch(svc service.Service, store, clone string) {
	if err := svc.DeleteDisk(context.Background(), clone, true); err == nil || errors.Is(err, rowstore.ErrNotFound) {
		_ = service.ForgetScratch(store, clone)
	}
}

// unmountRetry unmounts mp; not mounted is fine; busy is ErrBusy.
func unmountRetry(mp string) error {
	var err error
	for i := 0; i < 10; i++ {
		err = syscall.Unmount(mp, 0)
		if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%w: %s is in use; close what uses it and try again", rowstore.ErrBusy, mp)
}

// runTool runs an external program and returns its trimmed stdout; its
// failure is an error carrying the first line of its stderr.
func runTool(name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), msg)
	}
	return strings.TrimSpace(out.String()), nil
}

// cleanPath is the absolute path of p, without symlinks when it exists.
func cleanPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", rowstore.ErrInvalid, err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	return abs, nil
}

// existingDir is the absolute, symlink-free path of a mountpoint directory,
// created (like `mount --mkdir`) when it does not exist yet. rmdir removes
// what it created: a command that fails afterwards leaves nothing behind.
func existingDir(p string) (dir string, rmdir func(), err error) {
	rmdir = func() {}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", rmdir, fmt.Errorf("%w: %v", rowstore.ErrInvalid, err)
	}
	if _, err := os.Lstat(abs); errors.Is(err, os.ErrNotExist) {
		// Only the last component is created: a missing parent is a typo
		// more often than a wish.
		if err := os.Mkdir(abs, 0o755); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", rmdir, fmt.Errorf("%w: the parent of mountpoint %s does not exist (snapfs creates only the last directory)", rowstore.ErrNotFound, abs)
			}
			return "", rmdir, fmt.Errorf("create mountpoint %s: %w", abs, err)
		}
		rmdir = func() { _ = os.Remove(abs) }
	}
	r, err := filepath.EvalSymlinks(abs)
	if err != nil {
		rmdir()
		return "", func() {}, fmt.Errorf("%w: mountpoint %s does not exist", rowstore.ErrNotFound, abs)
	}
	fi, err := os.Stat(r)
	if err != nil {
		rmdir()
		return "", func() {}, fmt.Errorf("mountpoint %s: %w", r, err)
	}
	if !fi.IsDir() {
		return "", func() {}, fmt.Errorf("%w: mountpoint %s is not a directory", rowstore.ErrInvalid, r)
	}
	return r, rmdir, nil
}

// mountEntry is a line of /proc/self/mounts.
type mountEntry struct{ source, target, fstype string }

func mounts() []mountEntry {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []mountEntry
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		out = append(out, mountEntry{unescapeMount(f[0]), unescapeMount(f[1]), f[2]})
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 for space, ...) of /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

func mounted(mp string) bool {
	for _, m := range mounts() {
		if m.target == mp {
			return true
		}
	}
	return false
}

// writeJSONFile writes v to path atomically and durably (vfs.WriteFile:
// unique temporary name, fsync of the file and the directory).
func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.MkdirAllSync(vfs.Default, filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := vfs.WriteFile(vfs.Default, path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
