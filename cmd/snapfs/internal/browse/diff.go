package browse

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// Entry is what the file diff knows of one path of a tree.
type Entry struct {
	Ino   uint64
	Btime int64 // birth time (ns), 0 when the filesystem has none: tells a reused inode number from the same file
	Mode  uint32
	Uid   uint32
	Gid   uint32
	Size  int64
	Mtime int64 // ns
	Ctime int64 // ns
	Link  string
}

// Tree is the entries of a filesystem by path relative to its root ("/"
// separated, no leading slash).
type TreeEntries map[string]Entry

// Walk stats every entry under root (not following symlinks, not crossing
// into other mounts). It runs statx on 4 goroutines per directory level.
func Walk(ctx context.Context, root string) (TreeEntries, error) {
	out := TreeEntries{}
	var mu sync.Mutex
	var rootSt unix.Stat_t
	if err := unix.Lstat(root, &rootSt); err != nil {
		return nil, fmt.Errorf("walk %s: %w", root, err)
	}
	dirs := []string{""}
	for len(dirs) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var next []string
		var firstErr error
		var wg sync.WaitGroup
		work := make(chan string)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for rel := range work {
					subs, err := walkDir(root, rel, uint64(rootSt.Dev), out, &mu)
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					next = append(next, subs...)
					mu.Unlock()
				}
			}()
		}
		for _, d := range dirs {
			work <- d
		}
		close(work)
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
		dirs = next
	}
	return out, nil
}

func walkDir(root, rel string, dev uint64, out TreeEntries, mu *sync.Mutex) ([]string, error) {
	f, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return nil, fmt.Errorf("walk: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", rel, err)
	}
	var subs []string
	for _, name := range names {
		p := name
		if rel != "" {
			p = rel + "/" + name
		} else if name == "lost+found" {
			continue
		}
		var sx unix.Statx_t
		full := filepath.Join(root, p)
		if err := unix.Statx(unix.AT_FDCWD, full, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_DONT_SYNC,
			unix.STATX_BASIC_STATS|unix.STATX_BTIME, &sx); err != nil {
			return nil, fmt.Errorf("walk %s: %w", p, err)
		}
		e := Entry{Ino: sx.Ino, Mode: uint32(sx.Mode), Uid: sx.Uid, Gid: sx.Gid, Size: int64(sx.Size),
			Mtime: sx.Mtime.Sec*1e9 + int64(sx.Mtime.Nsec), Ctime: sx.Ctime.Sec*1e9 + int64(sx.Ctime.Nsec)}
		if sx.Mask&unix.STATX_BTIME != 0 {
			e.Btime = sx.Btime.Sec*1e9 + int64(sx.Btime.Nsec)
		}
		switch e.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			e.Link, _ = os.Readlink(full)
		case unix.S_IFDIR:
			if uint64(unix.Mkdev(sx.Dev_major, sx.Dev_minor)) == dev {
				subs = append(subs, p)
			}
		}
		mu.Lock()
		out[p] = e
		mu.Unlock()
	}
	return subs, nil
}

// Change kinds.
const (
	Created  = "created"
	Deleted  = "deleted"
	Modified = "modified"
	Renamed  = "renamed"
)

// Change is one difference between two trees, like a line of zfs diff.
type Change struct {
	Kind string `json:"kind"`           // created, deleted, modified, renamed
	Path string `json:"path"`           // the path now (the old path when deleted)
	From string `json:"from,omitempty"` // renamed: the old path
	Type string `json:"file_type"`      // file, dir, symlink, fifo, socket, char, block
	// Modified is set on a renamed file whose content or metadata changed too.
	Modified bool `json:"modified,omitempty"`
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	}
	return "file"
}

// sameFile says whether a and b are the same file (inode number and birth
// time), not whether it changed.
func sameFile(a, b Entry) bool {
	return a.Ino == b.Ino && a.Btime == b.Btime && a.Mode&unix.S_IFMT == b.Mode&unix.S_IFMT
}

// changed says whether the content or metadata of a file changed.
func changed(a, b Entry) bool {
	return a.Ctime != b.Ctime || changedBut(a, b)
}

// changedBut compares all but the ctime, which a rename changes (ext4,
// xfs): a renamed file is "modified" too only when this differs.
func changedBut(a, b Entry) bool {
	return a.Size != b.Size || a.Mtime != b.Mtime || a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Link != b.Link
}

// Compare lists the changes from old to new, sorted by path. A path whose
// inode is the same file in both is modified when its size, times, mode,
// owner or target changed; a file (by inode number and birth time) found
// at other paths is renamed (hard links are paired in path order; extra
// names are created or deleted).
func Compare(old, new TreeEntries) []Change {
	var out []Change
	type key struct {
		ino   uint64
		btime int64
	}
	oldBy := map[key][]string{}
	newBy := map[key][]string{}
	for p, e := range old {
		if n, ok := new[p]; ok && sameFile(e, n) {
			if changed(e, n) {
				out = append(out, Change{Kind: Modified, Path: p, Type: fileType(n.Mode)})
			}
			continue
		}
		oldBy[key{e.Ino, e.Btime}] = append(oldBy[key{e.Ino, e.Btime}], p)
	}
	for p, e := range new {
		if o, ok := old[p]; ok && sameFile(o, e) {
			continue
		}
		newBy[key{e.Ino, e.Btime}] = append(newBy[key{e.Ino, e.Btime}], p)
	}
	for k, ops := range oldBy {
		nps := newBy[k]
		sort.Strings(ops)
		sort.Strings(nps)
		i := 0
		for ; i < len(ops) && i < len(nps); i++ {
			o, n := old[ops[i]], new[nps[i]]
			if o.Mode&unix.S_IFMT != n.Mode&unix.S_IFMT {
				break
			}
			out = append(out, Change{Kind: Renamed, Path: nps[i], From: ops[i], Type: fileType(n.Mode), Modified: changedBut(o, n)})
		}
		for _, p := range ops[i:] {
			out = append(out, Change{Kind: Deleted, Path: p, Type: fileType(old[p].Mode)})
		}
		for _, p := range nps[min(i, len(nps)):] {
			out = append(out, Change{Kind: Created, Path: p, Type: fileType(new[p].Mode)})
		}
		delete(newBy, k)
	}
	for _, nps := range newBy {
		for _, p := range nps {
			out = append(out, Change{Kind: Created, Path: p, Type: fileType(new[p].Mode)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}
