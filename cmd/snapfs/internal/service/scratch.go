package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Scratch clones (the throw-away disks of `snapshot mount`) are recorded in
// a ledger before they are created: <store>/snapmounts/clones/<name>.json,
// one small JSON file each (scratchEntry, written with vfs.WriteFile). The
// ledger is what makes them safe to find and remove after a crash: a user's
// disk may have any name, "snapmount-…" included, so a scratch clone is never
// recognized by its name alone.
//
// Invariants:
//   - a scratch clone exists only while its ledger entry does (the entry is
//     written before the clone is created and removed after it is deleted);
//   - scratch clones are never listed (disk list, M/disks/), though they can
//     be opened by name (the loop device of the snapshot mount needs that);
//   - at daemon start (CleanScratch) every snapshot mount of the previous
//     daemon is dead (its loop device read through the old FUSE connection):
//     its mount is detached, its loop device detached, its clone deleted, its
//     record and ledger entry removed.

// ScratchDir is the ledger directory, relative to the store.
const ScratchDir = "snapmounts/clones"

// scratchVersion is the ledger entry's format version.
const scratchVersion = 1

// scratchEntry is one ledger entry.
type scratchEntry struct {
	Version  int    `json:"version"`
	Clone    string `json:"clone"`
	Snapshot string `json:"snapshot"`
	Disk     string `json:"disk"`
	Image    string `json:"image,omitempty"` // a clone of an image (.files of M/images/<image>)
	// TempSnapshot: Clone names a temporary snapshot (kind ScratchKind) of
	// Disk taken by diff --files to compare with the disk now, not a disk.
	TempSnapshot bool      `json:"temp_snapshot,omitempty"`
	Mountpoint   string    `json:"mountpoint"` // the daemon's: the clone's file is <mountpoint>/disks/<clone>
	Created      time.Time `json:"created"`
}

func (l *Local) scratchPath(name string) string {
	return filepath.Join(l.dir, ScratchDir, name+".json")
}

// recordScratch writes the ledger entry of a scratch clone about to be made.
func (l *Local) recordScratch(name, snapshot, disk string) error {
	return l.recordScratchEntry(scratchEntry{Clone: name, Snapshot: snapshot, Disk: disk, Mountpoint: l.mountpoint})
}

func (l *Local) recordScratchEntry(e scratchEntry) error {
	e.Version, e.Created = scratchVersion, time.Now().UTC()
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := vfs.MkdirAllSync(vfs.Default, filepath.Join(l.dir, ScratchDir), 0o700); err != nil {
		return fmt.Errorf("scratch clone ledger: %w", err)
	}
	if err := vfs.WriteFile(vfs.Default, l.scratchPath(e.Clone), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("scratch clone ledger: %w", err)
	}
	return nil
}

// ForgetScratch removes the ledger entry of a scratch clone that was deleted.
func ForgetScratch(store, clone string) error {
	err := os.Remove(filepath.Join(store, ScratchDir, clone+".json"))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

// scratchEntries reads the ledger; unreadable entries are skipped (logged).
func (l *Local) scratchEntries() map[string]scratchEntry {
	out := map[string]scratchEntry{}
	es, err := os.ReadDir(filepath.Join(l.dir, ScratchDir))
	if err != nil {
		return out
	}
	for _, de := range es {
		name := de.Name()
		if vfs.IsTemp(name) || !strings.HasSuffix(name, ".json") {
			continue
		}
		var e scratchEntry
		data, err := os.ReadFile(filepath.Join(l.dir, ScratchDir, name))
		if err == nil {
			err = json.Unmarshal(data, &e)
		}
		if err != nil || e.Clone+".json" != name {
			l.log.Warn("unreadable scratch clone ledger entry", "file", name, "err", err)
			continue
		}
		out[e.Clone] = e
	}
	return out
}

// HideScratch drops the scratch clones from a disk listing.
func (l *Local) HideScratch(ds []rowstore.DiskInfo) []rowstore.DiskInfo {
	scratch := l.scratchEntries()
	if len(scratch) == 0 {
		return ds
	}
	out := ds[:0:0]
	for _, d := range ds {
		if _, ok := scratch[d.Name]; !ok {
			out = append(out, d)
		}
	}
	return out
}

// CleanScratch undoes what snapshot mounts of an earlier daemon left: it is
// called at daemon start, before the namespace is mounted, when no snapshot
// mount of this store can be alive. Problems are logged, never fatal.
func (l *Local) CleanScratch() {
	log := l.log.With("cleanup", "snapshot mounts")
	// The .files mounts first: they hold loop devices of scratch clones.
	browse.Clean(filepath.Join(l.dir, FilesDir), log)
	loops := loopBackings()
	detach := func(dev string) {
		for _, m := range procMounts() {
			if m[0] == dev || strings.HasPrefix(m[0], dev+"p") { // a partition of it too
				if err := syscall.Unmount(m[1], syscall.MNT_DETACH); err != nil {
					log.Warn("unmount stale snapshot mount", "mountpoint", m[1], "err", err)
				} else {
					log.Info("unmounted stale snapshot mount", "mountpoint", m[1], "loop", dev)
				}
			}
		}
		if err := loopDetach(dev); err != nil {
			log.Warn("detach stale loop device", "loop", dev, "err", err)
		} else {
			log.Info("detached stale loop device", "loop", dev)
		}
	}
	scratch := l.scratchEntries()
	// Records of snapshot mounts: all dead now.
	for _, f := range snapMountFiles(l.dir) {
		path, r := f.path, f.rec
		if f.err != nil {
			log.Warn("unreadable snapshot mount record", "file", path, "err", f.err)
			continue
		}
		if _, ok := scratch[r.Clone]; !ok {
			// A record from before the ledger: its clone is named in it.
			scratch[r.Clone] = scratchEntry{Clone: r.Clone}
		}
		if b, ok := loops[r.Loop]; ok && strings.HasSuffix(b, "/disks/"+r.Clone) {
			detach(r.Loop)
			delete(loops, r.Loop)
		}
		if err := os.Remove(path); err != nil {
			log.Warn("remove stale snapshot mount record", "file", path, "err", err)
		}
	}
	for name, e := range scratch {
		if e.TempSnapshot {
			if s, err := l.store.GetSnapshot(name); err == nil && s.Kind == ScratchKind {
				if err := l.store.DeleteSnapshot(name); err != nil {
					log.Warn("delete stale temporary snapshot", "snapshot", name, "err", err)
					continue
				}
				log.Info("deleted stale temporary snapshot", "snapshot", name)
			}
			_ = ForgetScratch(l.dir, name)
			continue
		}
		// The loop device reads <mountpoint>/disks/<clone>; once the dead
		// mount was detached (snapfs umount of a stale mount), the kernel
		// shows that path from the detached mount's root: /disks/<clone>.
		for dev, b := range loops {
			if (e.Mountpoint != "" && b == filepath.Join(e.Mountpoint, "disks", name)) || b == "/disks/"+name {
				detach(dev)
				delete(loops, dev)
			}
		}
		// Only a clone of the recorded snapshot is deleted: a disk a user
		// created under that name (between the record and the clone) stays.
		want := "snapshot " + e.Snapshot + "/" + e.Disk
		if e.Image != "" {
			want = "image " + e.Image
		}
		if d, err := l.store.GetDisk(name); err == nil && (e.Snapshot != "" || e.Image != "") && d.Origin != want {
			log.Warn("a disk has the name of a scratch clone but is not one; kept", "disk", name, "origin", d.Origin)
			_ = ForgetScratch(l.dir, name)
			continue
		}
		err := l.store.DeleteDisk(name, true)
		if err != nil && !errors.Is(err, rowstore.ErrNotFound) {
			log.Warn("delete stale scratch clone", "clone", name, "err", err)
			continue
		}
		if err == nil {
			log.Info("deleted stale scratch clone", "clone", name)
		}
		if err := ForgetScratch(l.dir, name); err != nil {
			log.Warn("remove scratch clone ledger entry", "clone", name, "err", err)
		}
	}
}

// loopBackings maps each loop device (/dev/loopN) to its backing file, with
// the kernel's " (deleted)" suffix removed.
func loopBackings() map[string]string {
	out := map[string]string{}
	es, _ := os.ReadDir("/sys/block")
	for _, e := range es {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "loop/backing_file"))
		if err != nil {
			continue
		}
		out["/dev/"+e.Name()] = strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
	}
	return out
}

// MountedAt reports whether something is mounted at dir (/proc/self/mounts).
func MountedAt(dir string) bool {
	for _, m := range procMounts() {
		if m[1] == dir {
			return true
		}
	}
	return false
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

// loopDetach detaches a loop device (LOOP_CLR_FD), as losetup -d does.
func loopDetach(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const loopClrFD = 0x4C01
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), loopClrFD, 0); e != 0 {
		return e
	}
	return nil
}

// scratchClone makes a scratch clone of a snapshot's disk or of an image,
// recorded in the ledger before it exists. It calls no hook: the .files of
// the mount call it from inside FUSE requests (a new name needs no
// invalidation: failed lookups are never cached).
func (l *Local) scratchClone(src browse.Source) (Disk, error) {
	if src.Region != "" {
		return l.remoteScratch(src) // local_remote.go
	}
	what := src.Snapshot + "-" + src.Disk
	if src.Image != "" {
		what = "image-" + src.Image
	}
	base := ScratchPrefix + what
	l.mu.Lock()
	defer l.mu.Unlock()
	for tries := 0; tries < 1000; tries++ {
		l.scratch++
		name := fmt.Sprintf("%s-%d", base, l.scratch)
		if len(name) > rowstore.MaxNameLen {
			name = fmt.Sprintf("%s%s-%d", ScratchPrefix, strings.TrimLeft(what[:min(len(what), 40)], "."), l.scratch)
		}
		if _, err := l.store.GetDisk(name); err == nil {
			continue // taken: never write a ledger entry for a user's disk
		}
		if err := l.recordScratchEntry(scratchEntry{Clone: name, Snapshot: src.Snapshot, Disk: src.Disk, Image: src.Image, Mountpoint: l.mountpoint}); err != nil {
			return Disk{}, err
		}
		var d Disk
		var err error
		if src.Image != "" {
			d, err = l.store.CreateDiskFromImage(name, src.Image)
		} else {
			d, err = l.store.CloneDisk(name, src.Snapshot, src.Disk)
		}
		if err == nil {
			return d, nil
		}
		_ = ForgetScratch(l.dir, name)
		if !isExists(err) {
			return Disk{}, err
		}
	}
	return Disk{}, fmt.Errorf("%w: no free name for a scratch clone of %s", rowstore.ErrExists, src)
}
