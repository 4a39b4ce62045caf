package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// What keeps a mount busy, for the message of a refused snapfs umount
// (like fuser -m): loop devices whose backing file is under the mount, and
// processes whose working directory, root or open files are. Read from
// /sys and /proc; what cannot be read (another user's process when not
// root) is left out.

// maxHolders bounds the list in the one-line message.
const maxHolders = 6

// mountHolders describes what holds files under mp ("" when nothing is
// found), at most maxHolders entries and a count of the rest.
func mountHolders(mp string) string {
	var out []string
	if wd, err := os.Getwd(); err == nil && under(wd, mp) {
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

// under reports whether path is mp or inside it.
func under(path, mp string) bool {
	return path == mp || strings.HasPrefix(path, mp+"/")
}

// loopHolders are the loop devices backed by files under mp, with where
// each is mounted, if it is.
func loopHolders(mp string) []string {
	devs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	mounted := map[string]string{}
	for _, m := range mounts() {
		if strings.HasPrefix(m.source, "/dev/loop") {
			mounted[m.source] = m.target
		}
	}
	var out []string
	for _, f := range devs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		backing := strings.TrimSpace(string(b))
		if !under(backing, mp) {
			continue
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(f)))
		s := fmt.Sprintf("%s (%s", dev, strings.TrimPrefix(backing, mp+"/"))
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
