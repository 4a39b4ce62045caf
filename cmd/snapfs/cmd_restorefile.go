package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// restoreFileResult is the last line of restore-file --json.
type restoreFileResult struct {
	Snapshot string   `json:"snapshot"`
	Disk     string   `json:"disk"`
	Part     string   `json:"part,omitempty"`
	Paths    []string `json:"paths"`
	To       string   `json:"to"`
	browse.CopyStats
}

func restoreFileCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "restore-file",
		Usage: "copy files and directories out of the filesystem inside a snapshot's disk into DIR, " +
			"preserving owners, modes, times, symlinks, hard links, xattrs and holes (cp -a from .files, " +
			"all or nothing: on failure nothing is left in DIR); needs a running daemon",
		ArgsUsage: "SNAPSHOT PATH... (paths inside the disk's filesystem)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "disk", Usage: "the disk of the snapshot", Required: true},
			&cli.StringFlag{Name: "part", Usage: "the partition (p1, p2, ...) of a partitioned disk"},
			&cli.StringFlag{Name: "to", Usage: "the directory to restore into (e.g. the live disk's mounted filesystem)", Required: true},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace files and symlinks already in DIR (directories never)"},
		},
		Action: func(c *cli.Context) error {
			a := c.Args().Slice()
			if len(a) < 2 {
				return usagef("restore-file: want SNAPSHOT PATH..., got %d argument(s)", len(a))
			}
			snap, disk, part := a[0], c.String("disk"), c.String("part")
			if err := errors.Join(rowstore.ValidateName("snapshot", snap), rowstore.ValidateName("disk", disk)); err != nil {
				return err
			}
			if part != "" && (len(part) < 2 || part[0] != 'p' || strings.Trim(part[1:], "0123456789") != "") {
				return usagef("restore-file: --part %q is not a partition name (p1, p2, ...)", part)
			}
			var rels []string
			for _, p := range a[1:] {
				rel, err := insidePath(p)
				if err != nil {
					return err
				}
				rels = append(rels, rel)
			}
			to, err := cleanPath(c.String("to"))
			if err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				status, err := svc.Status(ctx)
				if err != nil {
					return err
				}
				if !status.Daemon {
					return fmt.Errorf("%w: restore-file reads the snapshot's files through the daemon's mount (start one with snapfs mount --background MOUNTPOINT)", exitcode.ErrNoDaemon)
				}
				if _, err := svc.GetSnapshot(ctx, snap); err != nil {
					return err
				}
				root := filepath.Join(status.Mountpoint, "snapshots", snap, disk+".files")
				if _, err := os.Stat(root); err != nil {
					return fmt.Errorf("%w: disk %s of snapshot %s shows no files (no such disk, or no filesystem snapfs can read: see snapfs snapshot info %s): %v",
						rowstore.ErrNotFound, disk, snap, snap, err)
				}
				if mp := status.Mountpoint; to == mp || strings.HasPrefix(to, mp+"/") {
					return usagef("restore-file: --to %s is inside the snapfs mount: restore into a filesystem, such as the live disk's mounted one (mount -o loop %s/disks/%s DIR)", to, mp, disk)
				}
				if part != "" { // else paths of a partitioned disk start with p1/, p2/...
					if _, err := os.Stat(filepath.Join(root, part)); err != nil {
						return fmt.Errorf("%w: disk %s of snapshot %s has no partition %s with a filesystem snapfs can read (see snapfs snapshot info %s; a filesystem on the whole disk takes no --part)",
							rowstore.ErrNotFound, disk, snap, part, snap)
					}
					root = filepath.Join(root, part)
				}
				srcs := make([]string, len(rels))
				for i, rel := range rels {
					if srcs[i], err = resolveInRoot(root, rel); err != nil {
						return fmt.Errorf("restore-file (nothing was restored): %w", err)
					}
				}
				p := newPrinter(c, st)
				var bar *progressbar.ProgressBar
				last := time.Now()
				progress := func(s browse.CopyStats) {
					switch {
					case p.json:
						if time.Since(last) >= time.Second {
							last = time.Now()
							_ = p.object("restore_progress", s)
						}
					case bar != nil:
						_ = bar.Set64(s.Bytes)
					}
				}
				if !p.json && isTerminal(st.stderr) {
					bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(st.stderr), progressbar.OptionShowBytes(true),
						progressbar.OptionSetDescription("restore "+snap+"/"+disk), progressbar.OptionThrottle(200*time.Millisecond))
				}
				stats, err := browse.Copy(ctx, srcs, to, browse.CopyOptions{Overwrite: c.Bool("overwrite"), Progress: progress})
				if bar != nil {
					_ = bar.Exit()
					fmt.Fprintln(st.stderr)
				}
				if err != nil {
					if _, gerr := svc.GetSnapshot(ctx, snap); errors.Is(gerr, rowstore.ErrNotFound) {
						// Its files vanished mid-copy: say why, not which path.
						return fmt.Errorf("restore-file (nothing was restored): %w: snapshot %s was deleted while its files were copied", rowstore.ErrNotFound, snap)
					}
					if errors.Is(err, unix.ENOKEY) {
						err = lockedFiles(snap, disk)
					}
					return fmt.Errorf("restore-file (nothing was restored): %w", err)
				}
				res := restoreFileResult{Snapshot: snap, Disk: disk, Part: part, Paths: rels, To: to, CopyStats: stats}
				return p.result("restore_file", res, "restored %d files, %d directories, %d symlinks, %d hard links (%s) from %s/%s into %s",
					stats.Files, stats.Dirs, stats.Symlinks, stats.HardLinks, size(stats.Bytes), snap, disk, to)
			})
		},
	}
}

// insidePath is a PATH argument of restore-file as a path relative to the
// root of the snapshot's filesystem. A leading / means that root; a path
// that climbs above it with .. (../etc, a/../../etc) is refused (exit 2),
// never taken to mean the name it ends in.
func insidePath(p string) (string, error) {
	rel := filepath.Clean(strings.TrimLeft(p, "/"))
	switch {
	case p == "":
		return "", usagef("restore-file: an empty PATH: name the files or directories inside the snapshot's filesystem")
	case rel == ".":
		return "", usagef("restore-file: %q names the root of the filesystem: name the files or directories inside it", p)
	case rel == ".." || strings.HasPrefix(rel, "../"):
		return "", usagef("restore-file: %q leads outside the snapshot's filesystem: give a path inside it (such as etc/fstab)", p)
	}
	return rel, nil
}

// resolveInRoot is the host path of rel inside the directory root, with
// every symbolic link on the way resolved as inside the snapshot's
// filesystem (openat2 RESOLVE_IN_ROOT: an absolute target or a .. at the
// top stays in root), as a chroot into it would: a link to / in the
// snapshot names the snapshot's root, never the host's. The last
// component is not followed (a symlink is restored as a symlink).
func resolveInRoot(root, rel string) (string, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", browseErr(root, err)
	}
	defer unix.Close(dir)
	if r, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(dir)); err == nil {
		root = r // as the kernel names it (the mountpoint's path may hold a symlink)
	}
	fd, err := unix.Openat2(dir, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return "", browseErr(rel, err)
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("source %s: %w", rel, err)
	}
	if p != root && !strings.HasPrefix(p, root+"/") { // cannot happen with RESOLVE_IN_ROOT
		return "", fmt.Errorf("%w: %s leads outside the snapshot's filesystem", rowstore.ErrInvalid, rel)
	}
	return p, nil
}

// browseErr is an error opening a source path, with the sentinel its errno
// means.
func browseErr(p string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: source %s: no such file or directory in the snapshot", rowstore.ErrNotFound, p)
	case errors.Is(err, unix.ENOKEY):
		return fmt.Errorf("source %s: %w (%s)", p, rowstore.ErrLocked, unlockHint)
	case errors.Is(err, unix.EIO):
		return fmt.Errorf("%w: source %s: %v", rowstore.ErrCorrupt, p, err)
	}
	return fmt.Errorf("source %s: %w", p, err)
}

// unlockHint says how a locked encrypted disk's key is given.
const unlockHint = "unlock it: snapfs disk unlock NAME --key-file FILE, or mount with --key-file"

// lockedFiles is ENOKEY from the files of a snapshot's disk: the disk is
// encrypted and its key locked (exit 15, as the commands that open it say).
func lockedFiles(snap, disk string) error {
	return fmt.Errorf("snapshot %q disk %q: %w (%s)", snap, disk, rowstore.ErrLocked, unlockHint)
}
