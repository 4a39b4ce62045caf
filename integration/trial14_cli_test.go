package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Trial 14: `du -s snapshots/S` counts each disk twice: the disk image's
// blocks and, through the listed <d>.files directory, the blocks of every
// file of the filesystem inside it. The listing stays (DESIGN's namespace:
// ls and tab completion find the files); README documents du's
// --exclude='*.files' for what the snapshot holds, checked here, with the
// files' own st_blocks inside and check telling the daemon's scratch clone
// (made to show d.files) apart from the user's disks.
func TestTrial14DuSnapshot(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "64M")
	disk := filepath.Join(mp, "disks", "d")
	sh(t, "mkfs.ext4", "-q", disk)
	fsdir := filepath.Join(tmp, "fs")
	undo := loopMount(t, disk, fsdir)
	writeFileSync(t, filepath.Join(fsdir, "data"), randBytes(t, 8<<20))
	undo()
	ok(t, store, "snapshot", "create", "s1", "--disk", "d")
	var si struct{ Disks []struct{ Allocated int64 } }
	jsonLine(t, ok(t, store, "--json", "snapshot", "info", "s1"), "snapshot", &si)
	var info struct{ Allocated int64 }
	if len(si.Disks) == 1 {
		info.Allocated = si.Disks[0].Allocated
	}
	if info.Allocated < 8<<20 {
		t.Fatalf("snapshot s1 holds %d bytes, want at least 8 MiB", info.Allocated)
	}

	// <d>.files is listed (DESIGN's namespace; tab completion and ls find
	// it), so a plain du counts the disk and the files inside it; du with
	// --exclude='*.files' (README) is what the snapshot holds.
	snap := filepath.Join(mp, "snapshots", "s1")
	f := strings.Fields(sh(t, "du", "-s", "-B1", "--exclude=*.files", snap))
	du, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// The directory and snapshot.json add a few KiB at most.
	if du < info.Allocated || du > info.Allocated+64<<10 {
		t.Errorf("du -s --exclude='*.files' snapshots/s1 = %d bytes, want what the snapshot holds: %d (+ a few KiB)", du, info.Allocated)
	}
	if got := strings.Join(dirNames(t, snap), " "); got != "d d.files snapshot.json" {
		t.Errorf("snapshots/s1 lists %q, want %q", got, "d d.files snapshot.json")
	}
	// The files inside keep their own st_blocks (tar --sparse relies on them).
	var st struct{ Size, Blocks int64 }
	out := sh(t, "stat", "-c", "%s %b", filepath.Join(snap, "d.files", "data"))
	if _, err := fmt.Sscan(out, &st.Size, &st.Blocks); err != nil || st.Size != 8<<20 || st.Blocks*512 < 8<<20 {
		t.Errorf("stat d.files/data: %q (%v), want 8 MiB allocated", out, err)
	}
	// check counted the .files scratch clone among the disks without a
	// word: "2 disks" for a store whose disk list shows one.
	if out := ok(t, store, "check"); !strings.Contains(out, "2 disks") || !strings.Contains(out, "1 of the disks are scratch clones") {
		t.Errorf("check with d.files open: %q, want the scratch clone told apart", out)
	}
}

// Trial 14: `snapshot diff A B` of two snapshots titled its third column
// NOW, as if it compared with the disk now.
func TestTrial14DiffHeader(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "4M", "--block-size", "64K")
	disk := filepath.Join(mp, "disks", "d")
	writeAt(t, disk, 0, randBytes(t, 4096))
	ok(t, store, "snapshot", "create", "a", "--disk", "d")
	writeAt(t, disk, 1<<20, randBytes(t, 4096))
	ok(t, store, "snapshot", "create", "b", "--disk", "d")
	writeAt(t, disk, 2<<20, randBytes(t, 4096))

	out := ok(t, store, "snapshot", "diff", "a", "b", "--disk", "d")
	head := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if strings.Join(head, " ") != "OFFSET LENGTH IN b" {
		t.Errorf("snapshot diff a b: header %q, want OFFSET LENGTH IN b:\n%s", head, out)
	}
	if !strings.Contains(out, "1 ranges, 64 KiB changed in disk d from a to b") {
		t.Errorf("snapshot diff a b:\n%s", out)
	}
	out = ok(t, store, "snapshot", "diff", "a", "--disk", "d")
	if head := strings.Fields(strings.SplitN(out, "\n", 2)[0]); strings.Join(head, " ") != "OFFSET LENGTH NOW" {
		t.Errorf("snapshot diff a: header %q, want OFFSET LENGTH NOW", head)
	}
}

// Trial 14: `restore-file S ../etc` restored etc (the .. was dropped), and
// a path through a symlink in the snapshot (up -> /) was resolved on the
// host: `restore-file S up/etc/hostname` copied the host's file. A path
// that climbs out of the snapshot's filesystem is now refused (exit 2,
// nothing written), and symlinks resolve inside it, as in a chroot.
func TestTrial14RestoreFileEscape(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "32M")
	disk := filepath.Join(mp, "disks", "d")
	sh(t, "mkfs.ext4", "-q", disk)
	fsdir := filepath.Join(tmp, "fs")
	undo := loopMount(t, disk, fsdir)
	if err := os.MkdirAll(filepath.Join(fsdir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileSync(t, filepath.Join(fsdir, "etc", "hostname"), []byte("guest\n"))
	for link, target := range map[string]string{"up": "/", "etc/rel": "../../.."} {
		if err := os.Symlink(target, filepath.Join(fsdir, link)); err != nil {
			t.Fatal(err)
		}
	}
	undo()
	ok(t, store, "snapshot", "create", "s", "--disk", "d")

	to := filepath.Join(tmp, "to")
	if err := os.Mkdir(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../etc", "/../etc", "etc/../../etc", "etc/../..", ""} {
		fails(t, store, 2, "restore-file", "s", p, "--disk", "d", "--to", to)
		fails(t, store, 2, "restore-file", "s", "etc/hostname", p, "--disk", "d", "--to", to)
		if names := dirNames(t, to); len(names) != 0 {
			t.Fatalf("restore-file s %q: exit 2 but %v written", p, names)
		}
	}
	for _, p := range []string{"up/etc/hostname", "etc/rel/etc/hostname"} {
		ok(t, store, "restore-file", "s", p, "--disk", "d", "--to", to, "--overwrite")
		if got, err := os.ReadFile(filepath.Join(to, "hostname")); err != nil || string(got) != "guest\n" {
			t.Errorf("restore-file s %s: hostname %q (%v), want the snapshot's %q", p, got, err, "guest\n")
		}
	}
	// --to inside the mount (disks/ takes no directories, snapshots/ is
	// read-only) was exit 1, "staging directory: mkdir ...: invalid
	// argument", or exit 10: one clear refusal now.
	for _, dir := range []string{filepath.Join(mp, "disks"), filepath.Join(mp, "snapshots", "s")} {
		fails(t, store, 2, "restore-file", "s", "etc/hostname", "--disk", "d", "--to", dir)
	}
	// The last component is not followed: a symlink is restored as one.
	ok(t, store, "restore-file", "s", "up", "--disk", "d", "--to", to)
	if target, err := os.Readlink(filepath.Join(to, "up")); err != nil || target != "/" {
		t.Errorf("restore-file s up: %q (%v), want the symlink to /", target, err)
	}
}

// Trial 14: a failing pre-hook exited 1, as a post-hook failing after the
// snapshot was taken does, so a script could not tell "not taken" from
// "taken, but". It is now exit 5 (busy: the application could not be
// quiesced now, nothing changed, try again), in one line, with nothing
// snapshotted; a failing post-hook stays exit 1 and says it was taken.
func TestTrial14PreHookExit(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "d", "--size", "8M")
	for _, viaDaemon := range []bool{false, true} {
		if viaDaemon {
			daemon(t, store, mp)
		}
		for _, hook := range []string{"exit 3", "echo not now >&2; false", "sleep 30"} {
			// Not "h": a snapshot of that name (urfave/cli's help alias) is
			// TestTrial14HelpNames'.
			r := fails(t, store, 5, "snapshot", "create", "hooked", "--disk", "d", "--pre-hook", hook, "--hook-timeout", "1s")
			if !strings.Contains(r.stderr, "not taken") || !strings.Contains(r.stderr, "pre-hook") {
				t.Errorf("pre-hook %q (daemon %v): %q, want it to say the pre-hook failed and nothing was taken", hook, viaDaemon, r.stderr)
			}
			fails(t, store, 3, "snapshot", "info", "hooked")
		}
	}
	r := fails(t, store, 1, "snapshot", "create", "p", "--disk", "d", "--post-hook", "false")
	if !strings.Contains(r.stderr, "taken, but post-hook") {
		t.Errorf("post-hook failure: %q", r.stderr)
	}
	ok(t, store, "snapshot", "info", "p")
}

// Trial 14: a command whose first argument was "h" or "help" printed its
// help and exited 0, doing nothing: `snapshot create h --disk d` took no
// snapshot, `disk create help --size 1M` made no disk, `snapshot delete h`
// deleted nothing (urfave/cli gave every command a help subcommand, alias
// h). They are names like any other now.
func TestTrial14HelpNames(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "d", "--size", "1M")
	for _, name := range []string{"h", "help"} {
		if out := ok(t, store, "disk", "create", name, "--size", "1M"); !strings.Contains(out, "created disk "+name) {
			t.Errorf("disk create %s: %q", name, out)
		}
		if out := ok(t, store, "snapshot", "create", name, "--disk", "d"); !strings.Contains(out, "created snapshot "+name) {
			t.Errorf("snapshot create %s: %q", name, out)
		}
		ok(t, store, "snapshot", "info", name)
		// A flag's value named h or help is not --help: image create x
		// --snapshot h failed with "want NAME, got 0 argument(s)".
		if out := ok(t, store, "image", "create", "img-"+name, "--snapshot", name, "--disk", "d"); !strings.Contains(out, "img-"+name) {
			t.Errorf("image create --snapshot %s: %q", name, out)
		}
		ok(t, store, "image", "delete", "img-"+name)
		ok(t, store, "snapshot", "delete", name)
		fails(t, store, 3, "snapshot", "info", name)
		ok(t, store, "disk", "delete", name)
		fails(t, store, 3, "disk", "info", name)
	}
	// Help is still there.
	for _, args := range [][]string{{"snapshot", "create", "--help"}, {"help", "snapshot", "create"}, {"snapshot", "help", "create"}} {
		if out := ok(t, store, args...); !strings.Contains(out, "snapfs snapshot create - ") {
			t.Errorf("snapfs %v: %q, want the help of snapshot create", args, out)
		}
	}
}

// Trial 14: `snapfs umount M` with --store or SNAPFS_STORE naming another
// store than M's (a shell with SNAPFS_STORE exported for another store)
// found no daemon of that store, took M for a dead mount and unmounted it
// (detached it if busy): "no daemon was serving M; removed the stale
// mount", exit 0, and the live daemon stopped. Only a dead mount (ENOTCONN)
// is removed now; a live one is exit 9, left mounted.
func TestTrial14UmountOtherStoreKeepsMount(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, other, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "other"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	ok(t, other, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "1M")
	for _, args := range [][]string{{"umount", mp}, {"--store", other, "umount", mp}} {
		r := fails(t, other, 9, args...)
		if !strings.Contains(r.stderr, "live mount of store "+store) {
			t.Errorf("snapfs %v: %q, want it to name the mount's store", args, r.stderr)
		}
		if !isMounted(mp) {
			t.Fatalf("snapfs %v with another store unmounted the live mount", args)
		}
		if _, err := os.Stat(filepath.Join(mp, "disks", "d")); err != nil {
			t.Fatalf("after snapfs %v: %v", args, err)
		}
	}
}

// Trial 14: `snapfs diff a b --disk d` (zfs diff's form) said "flag
// provided but not defined: -disk", and a misspelt `snapshot dif a --disk d`
// "snapshot: flag provided but not defined: -disk": the unknown command
// is what is wrong, and is what they say now.
func TestTrial14UnknownCommandFirst(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"diff", "a", "b", "--disk", "d"}, `unknown command "diff"`},
		{[]string{"--json", "diff", "a", "--disk", "d"}, `unknown command "diff"`},
		{[]string{"snapshot", "dif", "a", "--disk", "d"}, `unknown command snapshot "dif"`},
		{[]string{"region", "snap", "r", "--json"}, `unknown command region "snap"`},
	} {
		r := fails(t, store, 2, tc.args...)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("snapfs %v: %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
	// Help through a group still works.
	if out := ok(t, store, "snapshot", "help", "diff"); !strings.Contains(out, "snapfs snapshot diff - ") {
		t.Errorf("snapshot help diff: %q", out)
	}
}

// Trial 14: the files of a locked encrypted disk's snapshot were refused
// with exit 1 and raw errors: restore-file "lstat ...: required key not
// available", snapshot mount "open scratch clone: open .../snapmount-...:
// required key not available", and diff --files against the disk now named
// its temporary snapshot (snapmount-now-...) as the locked one. All are
// exit 15 (locked) now, naming the user's snapshot and disk.
func TestTrial14LockedSnapshotFiles(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	key := filepath.Join(tmp, "key")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "enc", "--size", "32M", "--encrypt", "--key-file", key)
	sh(t, "mkfs.ext4", "-q", filepath.Join(mp, "disks", "enc"))
	fsdir := filepath.Join(tmp, "fs")
	undo := loopMount(t, filepath.Join(mp, "disks", "enc"), fsdir)
	writeFileSync(t, filepath.Join(fsdir, "f"), []byte("secret\n"))
	undo()
	ok(t, store, "snapshot", "create", "s", "--disk", "enc")
	if got, err := os.ReadFile(filepath.Join(mp, "snapshots", "s", "enc.files", "f")); err != nil || string(got) != "secret\n" {
		t.Fatalf("enc.files/f: %q, %v", got, err)
	}
	ok(t, store, "disk", "lock", "enc")
	to := filepath.Join(tmp, "to")
	if err := os.Mkdir(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"restore-file", "s", "f", "--disk", "enc", "--to", to},
		{"snapshot", "diff", "s", "--disk", "enc", "--files"},
		{"snapshot", "mount", "s", "--disk", "enc", filepath.Join(tmp, "old")},
	} {
		r := fails(t, store, 15, args...)
		if strings.Contains(r.stderr, "snapmount-") || !strings.Contains(r.stderr, "unlock") {
			t.Errorf("snapfs %v: %q, want the locked disk named, and how to unlock it", args, r.stderr)
		}
	}
	if names := dirNames(t, to); len(names) != 0 {
		t.Errorf("restore-file of a locked disk wrote %v", names)
	}
	if isMounted(filepath.Join(tmp, "old")) {
		t.Error("snapshot mount of a locked disk mounted something")
	}
	ok(t, store, "disk", "unlock", "enc", "--key-file", key)
	ok(t, store, "restore-file", "s", "f", "--disk", "enc", "--to", to)
}

// Trial 14: `policy create ... --freeze vol1=/mnt/vol1` without
// --consistency fs made a crash-consistent policy whose runs never froze
// anything (the runner freezes only for fs or app), silently; a --pre-hook
// ran under "consistency: crash". Left out, --consistency now follows
// them as snapshot create's does (--pre-hook: app, --freeze: fs), and an
// explicit crash with --freeze is refused (exit 2, nothing created).
func TestTrial14PolicyFreezeImpliesFs(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	ok(t, store, "init")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"f":  {[]string{"--freeze", "d=/mnt/d"}, "filesystem"},
		"hk": {[]string{"--pre-hook", "true"}, "application"},
		"c":  {nil, "crash"},
	} {
		args := append([]string{"--json", "policy", "create", name, "--at", "01:00", "--retain-count", "1"}, tc.args...)
		var p struct{ Consistency string }
		jsonLine(t, ok(t, store, args...), "policy", &p)
		if p.Consistency != tc.want {
			t.Errorf("policy create %v: consistency %q, want %q", tc.args, p.Consistency, tc.want)
		}
	}
	fails(t, store, 2, "policy", "create", "x", "--at", "01:00", "--retain-count", "1", "--consistency", "crash", "--freeze", "d=/mnt/d")
	fails(t, store, 3, "policy", "info", "x")
}

// Trial 14: `init` of a directory holding other files (--store /srv/data
// for /srv/data/snapfs) made it a store among them and set its mode to
// 0700, cutting off whoever else used it. Refused now (exit 2, nothing
// changed); an empty directory, or one holding only lost+found (a
// filesystem mounted for the store), is still taken.
func TestTrial14InitNonEmptyDir(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, dir, 2, "init")
	if names := dirNames(t, dir); strings.Join(names, " ") != "report.txt" {
		t.Errorf("refused init left %v", names)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("refused init changed the directory: %v %v", fi.Mode(), err)
	}
	fresh := filepath.Join(tmp, "fresh")
	if err := os.MkdirAll(filepath.Join(fresh, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	ok(t, fresh, "init")
	fails(t, fresh, 4, "init")
}

// Trial 14: snapshot create with an empty --pre-hook (or --post-hook) and
// --on-pre-hook-failure without a pre-hook were accepted and silently meant
// nothing; policy create refuses the same. Exit 2, no snapshot.
func TestTrial14EmptyHookFlags(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "d", "--size", "1M")
	for _, args := range [][]string{
		{"--pre-hook", ""},
		{"--post-hook", " "},
		{"--on-pre-hook-failure", "crash"},
	} {
		fails(t, store, 2, append([]string{"snapshot", "create", "s", "--disk", "d"}, args...)...)
		fails(t, store, 3, "snapshot", "info", "s")
	}
}

// Trial 14: region remove of a region a policy copies to was accepted, and
// every later run of the policy failed ("copy to dr: replicate: not
// found"). It is exit 5 (busy), naming the policy, and the region stays.
func TestTrial14RegionRemoveUsedByPolicy(t *testing.T) {
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	ok(t, store, "init")
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("cd", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "1", "--parity", "1", "--key-file", key, "--create"}
	for i := range 2 {
		add = append(add, "--store", "file://"+filepath.Join(tmp, fmt.Sprintf("store%d", i)))
	}
	ok(t, store, add...)
	ok(t, store, "disk", "create", "d", "--size", "1M")
	ok(t, store, "policy", "create", "hourly", "--at", "00:00", "--every", "1h", "--retain-count", "3", "--copy-to", "dr", "--disk", "d")
	r := fails(t, store, 5, "region", "remove", "dr")
	if !strings.Contains(r.stderr, "hourly") {
		t.Errorf("region remove dr: %q, want the policy named", r.stderr)
	}
	ok(t, store, "region", "info", "dr")
	ok(t, store, "policy", "delete", "hourly")
	ok(t, store, "region", "remove", "dr")
}
