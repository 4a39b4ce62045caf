package service

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
)

// FilesDir is the directory, relative to the store, under which the
// filesystems inside snapshot disks and images are mounted (.files,
// snapshot diff --files): private (0700), outside the daemon's mount.
const FilesDir = "files"

// EnableFiles starts the manager of the .files directories for the daemon
// mounted at mountpoint (scratch clones are reached as
// <mountpoint>/disks/<clone>). Call it once, before the mount serves.
func (l *Local) EnableFiles(mountpoint string, opts browse.Options) *browse.Manager {
	opts.Dir = filepath.Join(l.dir, FilesDir)
	if opts.Logger == nil {
		opts.Logger = l.log
	}
	l.files = browse.NewManager(filesHost{l: l, mountpoint: mountpoint}, opts)
	return l.files
}

// Files is the .files manager, nil when no daemon enabled it.
func (l *Local) Files() *browse.Manager { return l.files }

// ReleaseFiles unmounts every open .files filesystem (the daemon calls it
// before it unmounts its own mount, which their loop devices keep busy).
func (l *Local) ReleaseFiles() {
	if l.files != nil {
		l.files.ReleaseAll()
	}
}

// deleteSnapshot deletes snapshot name from the store and releases the
// .files filesystems of deleted snapshots and images that nothing uses: every
// path that deletes a snapshot goes through it (snapshot delete, a policy's
// eviction and expiry, the temporary snapshot of snapshot diff --files), so
// no scratch clone keeps a deleted snapshot's blocks from gc (trial 8).
func (l *Local) deleteSnapshot(name string) error {
	if err := l.store.DeleteSnapshot(name); err != nil {
		return err
	}
	l.releaseDeletedFiles()
	return nil
}

// releaseDeletedFiles releases the .files filesystems nothing uses of
// snapshots and images that no longer exist (their scratch clones held the
// deleted snapshot's blocks from gc, unseen, until the idle timeout: trial
// 8). One in use stays until it is released (idle, or at unmount). It looks
// up each open source (a few at most), so a delete with nothing open reads
// nothing more.
func (l *Local) releaseDeletedFiles() {
	if l.files == nil {
		return
	}
	l.files.ReleaseUnused(func(src browse.Source) bool {
		var id uint64
		var err error
		switch {
		case src.Region != "":
			return false
		case src.Image != "":
			var im rowstore.ImageInfo
			im, err = l.store.GetImage(src.Image)
			id = im.ID
		default:
			var si rowstore.SnapshotInfo
			si, err = l.store.GetSnapshot(src.Snapshot)
			id = si.ID
		}
		if err != nil {
			return errors.Is(err, rowstore.ErrNotFound)
		}
		return id != src.ID // deleted, and the name taken again
	})
}

func (l *Local) closeFiles() {
	if l.files != nil {
		_ = l.files.Close()
	}
}

// filesHost gives the browse manager its scratch clones.
type filesHost struct {
	l          *Local
	mountpoint string
}

func (h filesHost) Scratch(src browse.Source) (string, string, error) {
	if src.Region != "" {
		// Checked by the remote listing it comes from (local_remote.go).
	} else if src.Image == "" {
		if err := firstErr(rowstore.ValidateName("snapshot", src.Snapshot), rowstore.ValidateName("disk", src.Disk)); err != nil {
			return "", "", err
		}
	} else if err := rowstore.ValidateName("image", src.Image); err != nil {
		return "", "", err
	}
	d, err := h.l.scratchClone(src)
	if err != nil {
		return "", "", err
	}
	return d.Name, filepath.Join(h.mountpoint, "disks", d.Name), nil
}

func (h filesHost) DropScratch(name string) error {
	h.l.dropRemoteScratch(name) // local_remote.go
	err := h.l.store.DeleteDisk(name, true)
	if err != nil && !errors.Is(err, rowstore.ErrNotFound) {
		return fmt.Errorf("delete scratch clone %s: %w", name, err)
	}
	return ForgetScratch(h.l.dir, name)
}

// DiffFiles implements Service.
func (l *Local) DiffFiles(ctx context.Context, r FilesDiffRequest) (FilesDiff, error) {
	if l.files == nil {
		return FilesDiff{}, fmt.Errorf("%w: snapshot diff --files needs a running daemon (start one with snapfs mount)", exitcode.ErrNoDaemon)
	}
	if err := firstErr(rowstore.ValidateName("snapshot", r.Old), rowstore.ValidateName("disk", r.Disk)); err != nil {
		return FilesDiff{}, err
	}
	// A locked disk is refused up front, in its own name (trial14: it was
	// refused for the temporary snapshot diff takes of the disk now,
	// "snapmount-now-...", a name the user never gave).
	if err := l.refuseLocked(r.Old, r.Disk); err != nil {
		return FilesDiff{}, err
	}
	start := time.Now()
	newSnap := r.New
	if newSnap == "" {
		tmp, drop, err := l.tempSnapshot(r.Disk)
		if err != nil {
			return FilesDiff{}, err
		}
		defer drop()
		newSnap = tmp
	} else if err := rowstore.ValidateName("snapshot", newSnap); err != nil {
		return FilesDiff{}, err
	}
	// The engine knows the changed blocks: none changed, no file changed
	// (no mount, no walk).
	bd, err := l.Diff(ctx, DiffRequest{Old: r.Old, New: newSnap, Disk: r.Disk})
	if err != nil {
		return FilesDiff{}, err
	}
	if len(bd.Ranges) == 0 {
		// Nothing walked, but the question must have the answer it has
		// after a write: a disk without a filesystem, or a partition it
		// lacks, is refused either way.
		if _, _, _, err := l.filesPart(r.Old, r.Disk, r.Part); err != nil {
			return FilesDiff{}, err
		}
		return FilesDiff{Disk: r.Disk, Old: r.Old, New: r.New, Part: r.Part, Changes: []browse.Change{}, Took: time.Since(start)}, nil
	}
	walk := func(snap string) (browse.TreeEntries, error) {
		t, dir, err := l.enterFiles(snap, r.Disk, r.Part)
		if err != nil {
			return nil, err
		}
		defer t.Release()
		return browse.Walk(ctx, dir)
	}
	var old, cur browse.TreeEntries
	var oerr, nerr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); old, oerr = walk(r.Old) }()
	cur, nerr = walk(newSnap)
	wg.Wait()
	if err := firstErr(oerr, nerr); err != nil {
		return FilesDiff{}, err
	}
	changes := browse.Compare(old, cur)
	if changes == nil {
		changes = []browse.Change{}
	}
	return FilesDiff{Disk: r.Disk, Old: r.Old, New: r.New, Part: r.Part, Changes: changes,
		OldFiles: len(old), NewFiles: len(cur), ChangedBytes: bd.ChangedBytes, Took: time.Since(start)}, nil
}

// enterFiles opens (holds) the filesystem part of disk in snapshot snap and
// returns the directory it is mounted on. Part "" picks the only
// filesystem of the disk.
func (l *Local) enterFiles(snap, disk, part string) (*browse.Tree, string, error) {
	src, layout, part, err := l.filesPart(snap, disk, part)
	if err != nil {
		return nil, "", err
	}
	t, err := l.files.Acquire(src, layout)
	if err != nil {
		return nil, "", err
	}
	dir, err := t.Dir(part)
	if err != nil {
		t.Release()
		return nil, "", err
	}
	return t, dir, nil
}

// filesPart probes the filesystems of disk in snapshot snap (without
// opening them) and returns the one part names: part, or "" for the only
// filesystem of the disk. A disk without one snapfs can read is
// ErrInvalid, a part it does not have ErrNotFound.
func (l *Local) filesPart(snap, disk, part string) (browse.Source, browse.Layout, string, error) {
	s, err := l.store.GetSnapshot(snap)
	if err != nil {
		return browse.Source{}, browse.Layout{}, "", err
	}
	src := browse.Source{Snapshot: snap, Disk: disk, ID: s.ID}
	layout, err := l.files.Layout(src, func() (browse.ReaderAtSize, error) { return l.store.OpenSnapshotDisk(snap, disk) })
	if err != nil {
		return src, layout, "", err
	}
	if !layout.Browsable() {
		return src, layout, "", fmt.Errorf("%w: disk %s of snapshot %s has no filesystem snapfs can read: %s", rowstore.ErrInvalid, disk, snap, layout.Reason)
	}
	names := make([]string, 0, len(layout.Parts))
	for _, p := range layout.Parts {
		names = append(names, p.Name)
	}
	switch {
	case part == "" && len(layout.Parts) > 1:
		return src, layout, "", fmt.Errorf("%w: disk %s has several filesystems (%s): choose one with --part", rowstore.ErrInvalid, disk, strings.Join(names, ", "))
	case part == "":
		part = layout.Parts[0].Name
	case !slices.Contains(names, part):
		return src, layout, "", fmt.Errorf("%w: %s/%s has no partition %q", rowstore.ErrNotFound, snap, disk, part)
	}
	return src, layout, part, nil
}

// tempSnapshot takes a snapshot of disk for a comparison with "now",
// recorded in the scratch ledger first (a crash leaves it to the next
// daemon start), and returns a function that deletes it. It is listed
// while it exists (kind "scratch").
func (l *Local) tempSnapshot(disk string) (string, func(), error) {
	l.mu.Lock()
	l.scratch++
	n := l.scratch
	l.mu.Unlock()
	name := fmt.Sprintf("%snow-%s-%d", ScratchPrefix, disk, n)
	if len(name) > rowstore.MaxNameLen {
		name = fmt.Sprintf("%snow-%d-%d", ScratchPrefix, time.Now().UnixNano(), n)
	}
	if err := l.recordScratchEntry(scratchEntry{Clone: name, TempSnapshot: true, Disk: disk, Mountpoint: l.mountpoint}); err != nil {
		return "", nil, err
	}
	if _, err := l.store.CreateSnapshot(name, []string{disk}, ScratchKind); err != nil {
		_ = ForgetScratch(l.dir, name)
		return "", nil, err
	}
	return name, func() {
		if err := l.deleteSnapshot(name); err != nil && !errors.Is(err, rowstore.ErrNotFound) {
			l.log.Warn("delete the temporary snapshot of a diff (deleted at the next daemon start)", "snapshot", name, "err", err)
			return
		}
		_ = ForgetScratch(l.dir, name)
	}, nil
}

// ScratchKind is the kind of the temporary snapshots of diff --files.
const ScratchKind = "scratch"

// filesLayout probes the filesystems inside a snapshot's disk (through the
// daemon's .files manager, which caches it, or directly): a few sectors
// read. nil when the disk cannot be read.
func (l *Local) filesLayout(id uint64, snap, disk string) *browse.Layout {
	open := func() (browse.ReaderAtSize, error) { return l.store.OpenSnapshotDisk(snap, disk) }
	if l.files != nil {
		lay, err := l.files.Layout(browse.Source{Snapshot: snap, Disk: disk, ID: id}, open)
		if err != nil {
			return nil
		}
		return &lay
	}
	r, err := open()
	if err != nil {
		return nil
	}
	defer r.Close()
	lay := browse.Probe(r, r.Size())
	return &lay
}

// refuseLocked returns the engine's ErrLocked (exit 15) when disk of
// snapshot snap is encrypted and its key is locked, before any scratch
// clone is made of it: a clone opened through the mount failed with a bare
// ENOKEY (exit 1) naming the clone (trial14).
func (l *Local) refuseLocked(snap, disk string) error {
	r, err := l.store.OpenSnapshotDisk(snap, disk)
	if err != nil {
		return err
	}
	return r.Close()
}
