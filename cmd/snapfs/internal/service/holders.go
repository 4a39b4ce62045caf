package service

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// What keeps a mount, or a disk file in it, busy, for the message of a
// refused snapfs umount, disk delete or disk rollback (like fuser -m):
// loop devices whose backing file is under the path, and processes whose
// working directory, root or open files are. Read from /sys and /proc;
// what cannot be read (another user's process when not root) is left out.

// maxHolders bounds the list in the one-line message.
const maxHolders = 6

// Holders describes what holds path (a mount point, or a disk file) or
// files under it ("" when nothing is found), at most maxHolders entries
// and a count of the rest. self: count this process's working directory
// (a command's, not the daemon's).
func Holders(mp string, self bool) string {
	var out []string
	if wd, err := os.Getwd(); self && err == nil && under(wd, mp) {
		out = append(out, "this command's working directory (cd out of "+mp+")")
	}
	out = append(out, loopHolders(mp)...)
	out = append(out, processHolders(mp)...)
	if len(out) == 0 {
		return ""
	}
	more := ""
	if len(out) > maxHolders {
		more = fmt.Sprintf(" and %d more", len(out)-maxHolders)
		out = out[:maxHolders]
	}
	return strings.Join(out, ", ") + more
}

// under reports whether path is mp or inside it (for a file: is it).
func under(path, mp string) bool {
	return path == mp || strings.HasPrefix(path, mp+"/")
}

// loopHolders are the loop devices backed by files under mp, with where
// each is mounted, if it is.
func loopHolders(mp string) []string {
	mounted := loopMounts()
	var out []string
	for dev, backing := range loopBackings() { // (scratch.go)
		if !under(backing, mp) {
			continue
		}
		s := dev + " (" + strings.TrimPrefix(backing, filepath.Dir(mp)+"/")
		if backing != mp {
			s = fmt.Sprintf("%s (%s", dev, strings.TrimPrefix(backing, mp+"/"))
		}
		for src, target := range mounted {
			if src == dev || strings.HasPrefix(src, dev+"p") {
				s += ", mounted on " + target
			}
		}
		out = append(out, s+")")
	}
	sort.Strings(out)
	return out
}

// processHolders are the processes (other than this one) with their
// working directory, root or an open file under mp.
func processHolders(mp string) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		var how string
		if l, err := os.Readlink(filepath.Join(dir, "cwd")); err == nil && under(l, mp) {
			how = "working directory"
		} else if l, err := os.Readlink(filepath.Join(dir, "root")); err == nil && under(l, mp) {
			how = "root directory"
		} else if fds, err := os.ReadDir(filepath.Join(dir, "fd")); err == nil {
			for _, fd := range fds {
				if l, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && under(l, mp) {
					how = "open " + strings.TrimPrefix(l, mp+"/")
					if l == mp {
						how = "open " + filepath.Base(mp)
					}
					break
				}
			}
		}
		if how == "" {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		out = append(out, fmt.Sprintf("%s (pid %d: %s)", strings.TrimSpace(string(comm)), pid, how))
	}
	return out
}

// loopMounts maps each loop device (or partition of one) mounted somewhere
// to where (procMounts, scratch.go).
func loopMounts() map[string]string {
	out := map[string]string{}
	for _, m := range procMounts() {
		if strings.HasPrefix(m[0], "/dev/loop") {
			out[m[0]] = m[1]
		}
	}
	return out
}
