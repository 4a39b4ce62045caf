package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// snapshot mount: the daemon does every step (scratch clone, loop device,
// read-only mount, record) with the same code as .files (browse.MountImage);
// the CLI only resolves the mountpoint and asks. The record of a snapshot
// mount is <store>/snapmounts/<key>.json (key: the first 8 bytes of the
// SHA-256 of the mountpoint, hex), SnapMount in JSON, written with
// vfs.WriteFile after the mount: what snapshot umount undoes. A mount whose
// steps fail, or whose request is canceled (the command killed), is undone
// before the answer; a daemon killed between two steps leaves the scratch
// clone in the ledger, and CleanScratch removes it, its loop device and its
// mount at the next start.

// SnapMountDir is the directory of snapshot mount records, relative to the store.
const SnapMountDir = "snapmounts"

// SnapMountVersion is the record's format version; a newer one is refused.
const SnapMountVersion = 1

// SnapMount is the record of a snapshot mount.
type SnapMount struct {
	Version    int       `json:"version"`
	Mountpoint string    `json:"mountpoint"`
	Snapshot   string    `json:"snapshot"`
	Disk       string    `json:"disk"`
	Part       string    `json:"part,omitempty"`
	Clone      string    `json:"clone"` // the throw-away disk
	Loop       string    `json:"loop"`  // the loop device
	FSType     string    `json:"fstype,omitempty"`
	Created    time.Time `json:"created"`
	// MadeMountpoint: snapshot mount created the mountpoint directory;
	// snapshot umount removes it (absent in older records: kept).
	MadeMountpoint bool `json:"made_mountpoint,omitempty"`
}

// SnapMountRequest asks for the filesystem of disk Disk of snapshot
// Snapshot to be mounted read-only at Mountpoint (absolute, an existing
// directory). FSType "" detects it; Part names a partition (p1, p2...) of a
// partitioned disk ("" : the only filesystem).
type SnapMountRequest struct {
	Snapshot   string `json:"snapshot"`
	Disk       string `json:"disk"`
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fstype,omitempty"`
	Part       string `json:"part,omitempty"`
	// MadeMountpoint: the command created the mountpoint directory (see
	// SnapMount.MadeMountpoint).
	MadeMountpoint bool `json:"made_mountpoint,omitempty"`
}

// SnapMountPath is the record of the snapshot mount at mountpoint.
func SnapMountPath(store, mountpoint string) string {
	h := sha256.Sum256([]byte(mountpoint))
	return filepath.Join(store, SnapMountDir, hex.EncodeToString(h[:8])+".json")
}

// snapMountFile is one record file of <store>/snapmounts and what it holds
// (err: unreadable or not JSON).
type snapMountFile struct {
	path string
	rec  SnapMount
	err  error
}

// snapMountFiles are the snapshot mount records of the store in dir (what
// snapfs status shows and the cleanup at daemon start undoes).
func snapMountFiles(dir string) []snapMountFile {
	paths, _ := filepath.Glob(filepath.Join(dir, SnapMountDir, "*.json"))
	out := make([]snapMountFile, 0, len(paths))
	for _, p := range paths {
		f := snapMountFile{path: p}
		data, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(data, &f.rec)
		}
		f.err = err
		out = append(out, f)
	}
	return out
}

// killPointForTest SIGKILLs the daemon at the named step of a snapshot
// mount when SNAPFS_TEST_KILL_AT names it (the integration tests' way to
// kill the daemon between two steps, deterministically).
func killPointForTest(step string) {
	if os.Getenv("SNAPFS_TEST_KILL_AT") == step {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// MountSnapshot implements Service.
func (l *Local) MountSnapshot(ctx context.Context, r SnapMountRequest) (m SnapMount, err error) {
	if l.mountpoint == "" || l.files == nil {
		return SnapMount{}, fmt.Errorf("%w: snapshot mount needs a running daemon for store %s (start one with snapfs mount --background MOUNTPOINT)", exitcode.ErrNoDaemon, l.dir)
	}
	if err := firstErr(rowstore.ValidateName("snapshot", r.Snapshot), rowstore.ValidateName("disk", r.Disk)); err != nil {
		return SnapMount{}, err
	}
	if !filepath.IsAbs(r.Mountpoint) || strings.ContainsAny(r.FSType, ", ") {
		return SnapMount{}, fmt.Errorf("%w: mountpoint %q must be absolute and --fstype %q a filesystem type", rowstore.ErrInvalid, r.Mountpoint, r.FSType)
	}
	rec := SnapMountPath(l.dir, r.Mountpoint)
	if _, err := os.Stat(rec); err == nil {
		return SnapMount{}, fmt.Errorf("%w: a snapshot is already mounted at %s (snapfs snapshot umount %s)", rowstore.ErrExists, r.Mountpoint, r.Mountpoint)
	}
	for _, pm := range procMounts() {
		if pm[1] == r.Mountpoint {
			return SnapMount{}, fmt.Errorf("%w: something is already mounted at %s", rowstore.ErrBusy, r.Mountpoint)
		}
	}
	si, err := l.store.GetSnapshot(r.Snapshot)
	if err != nil {
		return SnapMount{}, err
	}
	if err := l.refuseLocked(r.Snapshot, r.Disk); err != nil {
		return SnapMount{}, err
	}
	src := browse.Source{Snapshot: r.Snapshot, Disk: r.Disk, ID: si.ID}
	layout, err := l.files.Layout(src, func() (browse.ReaderAtSize, error) { return l.store.OpenSnapshotDisk(r.Snapshot, r.Disk) })
	if err != nil {
		return SnapMount{}, err
	}
	part, err := pickPart(layout, r)
	if err != nil {
		return SnapMount{}, err
	}
	var undo []func()
	defer func() {
		if err == nil {
			err = ctx.Err() // the command is gone: undo rather than leave a mount nobody knows of
		}
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	d, err := l.scratchClone(src)
	if err != nil {
		return SnapMount{}, err
	}
	host := filesHost{l: l, mountpoint: l.mountpoint}
	undo = append(undo, func() { _ = host.DropScratch(d.Name) })
	killPointForTest("clone")
	if err := ctx.Err(); err != nil {
		return SnapMount{}, err
	}
	file := filepath.Join(l.mountpoint, "disks", d.Name)
	loop, err := browse.MountImage(file, part, r.Mountpoint, browse.DefaultMountTimeout)
	if err != nil {
		return SnapMount{}, fmt.Errorf("mount %s/%s at %s: %w", r.Snapshot, r.Disk, r.Mountpoint, err)
	}
	undo = append(undo, func() { _ = browse.UnmountImage(r.Mountpoint, loop, d.Name, true) })
	killPointForTest("mount")
	m = SnapMount{Version: SnapMountVersion, Mountpoint: r.Mountpoint, Snapshot: r.Snapshot, Disk: r.Disk, Part: part.Name, MadeMountpoint: r.MadeMountpoint,
		Clone: d.Name, Loop: loop, FSType: part.FSType, Created: time.Now().UTC()}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return SnapMount{}, err
	}
	if err := vfs.MkdirAllSync(vfs.Default, filepath.Dir(rec), 0o700); err != nil {
		return SnapMount{}, fmt.Errorf("record: %w", err)
	}
	if err := vfs.WriteFile(vfs.Default, rec, append(data, '\n'), 0o600); err != nil {
		return SnapMount{}, fmt.Errorf("record: %w", err)
	}
	undo = append(undo, func() { _ = os.Remove(rec) })
	killPointForTest("record")
	return m, nil
}

// pickPart chooses the filesystem to mount: the probe's (whole disk, or
// the partition asked for, or the only one), or the whole disk with the
// type the user gave.
func pickPart(layout browse.Layout, r SnapMountRequest) (browse.Part, error) {
	if r.Part != "" {
		p, ok := layout.Find(r.Part)
		if !ok {
			return browse.Part{}, fmt.Errorf("%w: disk %s of snapshot %s has no partition %s with a filesystem snapfs reads (%s)", rowstore.ErrNotFound, r.Disk, r.Snapshot, r.Part, layout.Scheme)
		}
		if r.FSType != "" {
			p.FSType = r.FSType
		}
		return p, nil
	}
	if r.FSType != "" && (layout.Scheme == "" || layout.Scheme == "whole") {
		return browse.Part{FSType: r.FSType}, nil
	}
	switch {
	case !layout.Browsable():
		return browse.Part{}, fmt.Errorf("%w: disk %s of snapshot %s: %s (give --fstype to try another type)", rowstore.ErrInvalid, r.Disk, r.Snapshot, layout.Reason)
	case len(layout.Parts) > 1:
		return browse.Part{}, fmt.Errorf("%w: disk %s of snapshot %s has several filesystems: choose one with --part", rowstore.ErrInvalid, r.Disk, r.Snapshot)
	}
	p := layout.Parts[0]
	if r.FSType != "" {
		p.FSType = r.FSType
	}
	return p, nil
}

// UmountSnapshot implements Service. It works without a daemon too (a
// record left by a dead one: its mount is detached lazily by CleanScratch
// at the next start, so this only finds records of live ones).
func (l *Local) UmountSnapshot(ctx context.Context, mountpoint string) (SnapMount, error) {
	rec := SnapMountPath(l.dir, mountpoint)
	var m SnapMount
	data, err := os.ReadFile(rec)
	if errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("%w: no snapshot of store %s is mounted at %s", rowstore.ErrNotFound, l.dir, mountpoint)
	}
	if err != nil {
		return m, fmt.Errorf("read %s: %w", rec, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%w: %s: %v", rowstore.ErrCorrupt, rec, err)
	}
	if m.Version > SnapMountVersion {
		return m, fmt.Errorf("%w: %s was written by a newer snapfs (record version %d)", rowstore.ErrIncompatible, rec, m.Version)
	}
	if err := browse.UnmountImage(mountpoint, m.Loop, m.Clone, false); err != nil {
		return m, err
	}
	if err := (filesHost{l: l}).DropScratch(m.Clone); err != nil {
		return m, fmt.Errorf("unmounted %s, but deleting its clone %s failed (delete it with snapfs disk delete --force %s): %w", mountpoint, m.Clone, m.Clone, err)
	}
	if err := os.Remove(rec); err != nil {
		return m, fmt.Errorf("remove %s: %w", rec, err)
	}
	if m.MadeMountpoint {
		_ = os.Remove(mountpoint) // only when still empty
	}
	return m, nil
}
