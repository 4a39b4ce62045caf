package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// snapshot mount and umount ask the daemon (Service.MountSnapshot and
// UmountSnapshot, service/snapmount.go), which does every step with the
// code of the .files directories (package browse) and owns their cleanup:
// this file only resolves the mountpoint in the caller's directory.

func snapshotMountCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "mount",
		Usage: "mount the filesystem inside a snapshot's disk read-only (nodev, nosuid, noexec) at MOUNTPOINT, " +
			"through a throw-away writable clone (so a dirty ext4 or xfs journal replays); needs a running daemon",
		ArgsUsage: "NAME MOUNTPOINT",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "disk", Usage: "the disk of the snapshot"},
			&cli.StringFlag{Name: "fstype", Usage: "filesystem type (default: detected: ext4, xfs or btrfs)"},
			&cli.StringFlag{Name: "part", Usage: "the partition (p1, p2, ...) of a partitioned disk"},
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
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				m, err := svc.MountSnapshot(ctx, service.SnapMountRequest{Snapshot: snap, Disk: disk, Mountpoint: mp, FSType: fstype, Part: c.String("part"), MadeMountpoint: madeMountpoint})
				if err != nil {
					return err
				}
				return newPrinter(c, st).result("snapmount", m, "mounted %s/%s read-only at %s (clone %s on %s)", snap, disk, mp, m.Clone, m.Loop)
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
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				m, err := svc.UmountSnapshot(ctx, mp)
				if err != nil {
					return err
				}
				return newPrinter(c, st).result("snapumount", m, "unmounted %s and discarded clone %s", mp, m.Clone)
			})
		},
	}
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
