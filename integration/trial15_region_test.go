package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// trial15Region makes a 2+1 region "dr" over three file:// stores for
// store h (initialised here as host web1) and returns the store
// directories and the key file.
func trial15Region(t *testing.T, tmp, h string) (dirs []string, key string) {
	t.Helper()
	key = filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key}
	for i := range 3 {
		d := filepath.Join(tmp, fmt.Sprintf("store%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
		add = append(add, "--store", "file://"+d)
	}
	ok(t, h, "init", "--host-name", "web1")
	ok(t, h, add...)
	return dirs, key
}

// TestTrial15CheckUnwritableStore: a region store that is up but refuses
// writes (its file system remounted read-only) makes every sync fail
// (exit 11), and region check, which an operator runs to see why, must
// say so: exit 11 naming the store (README's exit-code table: "a region
// store is unreachable or unwritable (region check, ...)"), in text and
// --json. It said "OK ... 0 problem(s)" and exited 0. Once the store takes
// writes again check is clean.
func TestTrial15CheckUnwritableStore(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	h := filepath.Join(tmp, "host")
	dirs, _ := trial15Region(t, tmp, h)
	daemon(t, h, filepath.Join(tmp, "m"))
	ok(t, h, "region", "check", "dr")

	// Store 1 read-only: a bind mount of itself, remounted ro.
	plainMount(t, dirs[1], "--bind", dirs[1])
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", dirs[1]).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	r := fails(t, h, 11, "region", "check", "dr")
	if !strings.Contains(r.stderr, "store(s) [1]") || !strings.Contains(r.stderr, "refuse") {
		t.Fatalf("check with store 1 read-only: stderr %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "unwritable") || strings.Contains(r.stdout, ": OK:") {
		t.Fatalf("check with store 1 read-only: stdout %q", r.stdout)
	}
	t.Logf("check with store 1 read-only: %s%s", r.stdout, r.stderr)
	r = snapfs(t, h, "--json", "region", "check", "dr")
	var rep struct {
		Verdict    string `json:"verdict"`
		Unwritable []int  `json:"unwritable"`
		Problems   []struct {
			Store int    `json:"store"`
			Kind  string `json:"kind"`
		} `json:"problems"`
	}
	if r.code != 11 {
		t.Fatalf("check --json: exit %d, %q", r.code, r.stdout)
	}
	jsonLine(t, r.stdout, "check", &rep)
	if rep.Verdict != "unavailable" || fmt.Sprint(rep.Unwritable) != "[1]" || len(rep.Problems) != 1 || rep.Problems[0].Store != 1 || rep.Problems[0].Kind != "unwritable" {
		t.Fatalf("check --json with store 1 read-only: %+v", rep)
	}

	if out, err := exec.Command("umount", dirs[1]).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	ok(t, h, "region", "check", "dr")
}

// trial15Snapshots writes 4 MiB of new random data into disk vol1 (made
// here, 4 MiB) of the daemon at mp and snapshots it, once per name,
// syncing each snapshot to region dr.
func trial15Snapshots(t *testing.T, h, mp string, names ...string) {
	t.Helper()
	ok(t, h, "disk", "create", "vol1", "--size", "4M")
	for _, s := range names {
		writeAt(t, filepath.Join(mp, "disks", "vol1"), 0, randBytes(t, 4<<20))
		ok(t, h, "snapshot", "create", s, "--disk", "vol1")
		ok(t, h, "sync", "--region", "dr")
	}
}

// TestTrial15PruneStoreFailsMidway: a store that fails while prune
// deletes (an S3 server stopped, a file system gone read-only after prune
// took its lock) is exit 11, "store unavailable", naming the store, as
// sync's failure on it is: prune exited 1 with a bare "store 2 (...):
// delete index/...: 5 attempts failed" (the sync job cannot tell a store
// outage from a bug). Once the store is back, prune finishes and the
// region checks clean and restores.
func TestTrial15PruneStoreFailsMidway(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	dirs, _ := trial15Region(t, tmp, h)
	daemon(t, h, mp)
	trial15Snapshots(t, h, mp, "s1", "s2")
	// A --host naming no host of the region (a typo) is not found: it
	// was "removed 0 snapshot(s)", exit 0.
	r := fails(t, h, 3, "region", "prune", "dr", "--keep-last", "1", "--host", "web9")
	if !strings.Contains(r.stderr, `"web9"`) || !strings.Contains(r.stderr, "web1") {
		t.Fatalf("prune --host web9: %q", r.stderr)
	}
	fails(t, h, 3, "region", "prune", "dr", "--keep-last", "1", "--host", "web9", "--dry-run")

	// Store 1's packs read-only: the lock (locks/) goes in, deletes fail.
	packs := filepath.Join(dirs[1], "packs")
	plainMount(t, packs, "--bind", packs)
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", packs).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	r = fails(t, h, 11, "region", "prune", "dr", "--keep-last", "1")
	if !strings.Contains(r.stderr, "store 1 (") || !strings.Contains(r.stderr, "unavailable") || !strings.Contains(r.stderr, "prune") {
		t.Fatalf("prune with store 1 failing: %q", r.stderr)
	}
	t.Logf("prune with store 1 failing: %s", r.stderr)
	if out, err := exec.Command("umount", packs).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	ok(t, h, "region", "prune", "dr", "--keep-last", "1")
	ok(t, h, "region", "check", "dr", "--read-data")
	ok(t, h, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "back")
	if fileSum(t, filepath.Join(mp, "disks", "back")) != fileSum(t, filepath.Join(mp, "snapshots", "s2", "vol1")) {
		t.Fatal("restored s2 differs from the snapshot")
	}
}

// trial15Lag is status --json's lag of region dr.
func trial15Lag(t *testing.T, h string) (pending int, oldest string) {
	t.Helper()
	var st struct {
		Regions []struct {
			Region  string `json:"region"`
			Pending int    `json:"pending_snapshots"`
			Oldest  string `json:"oldest_pending"`
		} `json:"regions"`
	}
	jsonLine(t, ok(t, h, "--json", "status"), "status", &st)
	if len(st.Regions) != 1 || st.Regions[0].Region != "dr" {
		t.Fatalf("status regions: %+v", st.Regions)
	}
	return st.Regions[0].Pending, st.Regions[0].Oldest
}

// TestTrial15StatusLagPruned: status's region lag (and the metrics' from
// the same Lag) counts the local snapshots the region does not hold yet.
// A snapshot prune removed from the region, or one sync leaves out because
// the region's retention would remove it at once, is never shipped (sync
// says so), yet it was counted pending for ever: after the scheduled job
// (sync, prune) the status said "dr 1 pending, lag 13m" and the lag grew
// every hour while the region was up to date. snapshot info says
// "pruned" or "expired" for such a copy (it said "absent").
func TestTrial15StatusLagPruned(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	trial15Region(t, tmp, h)
	daemon(t, h, mp)
	trial15Snapshots(t, h, mp, "s1", "s2")
	if n, o := trial15Lag(t, h); n != 0 {
		t.Fatalf("after sync: %d pending (oldest %s)", n, o)
	}
	ok(t, h, "region", "prune", "dr", "--keep-last", "1")
	if n, o := trial15Lag(t, h); n != 0 {
		t.Fatalf("after prune removed s1 from the region: %d pending (oldest %s), want 0", n, o)
	}
	if out := ok(t, h, "snapshot", "info", "s1"); !strings.Contains(out, "pruned") {
		t.Fatalf("snapshot info s1 after prune: %s", out)
	}
	ok(t, h, "sync", "--region", "dr")
	if n, o := trial15Lag(t, h); n != 0 {
		t.Fatalf("after a sync that left pruned s1 out: %d pending (oldest %s), want 0", n, o)
	}

	// Retention keeps 1: sync ships only the newest of s3, s4.
	ok(t, h, "region", "retention", "dr", "--keep-last", "1")
	writeAt(t, filepath.Join(mp, "disks", "vol1"), 0, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "s3", "--disk", "vol1")
	writeAt(t, filepath.Join(mp, "disks", "vol1"), 0, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "s4", "--disk", "vol1")
	if n, _ := trial15Lag(t, h); n != 2 {
		t.Fatalf("before sync: %d pending, want 2 (s3, s4)", n)
	}
	ok(t, h, "sync", "--region", "dr")
	if n, o := trial15Lag(t, h); n != 0 {
		t.Fatalf("after a sync that shipped s4 and left s3 out (retention): %d pending (oldest %s), want 0", n, o)
	}
	if out := ok(t, h, "snapshot", "info", "s3"); !strings.Contains(out, "expired") {
		t.Fatalf("snapshot info s3 after sync: %s", out)
	}
	// The job's prune of s2 (retention 1): nothing pending either.
	ok(t, h, "region", "prune", "dr")
	if n, o := trial15Lag(t, h); n != 0 {
		t.Fatalf("after prune: %d pending (oldest %s), want 0", n, o)
	}
	// A new snapshot is pending until synced.
	writeAt(t, filepath.Join(mp, "disks", "vol1"), 0, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "s5", "--disk", "vol1")
	if n, o := trial15Lag(t, h); n != 1 || o != "s5" {
		t.Fatalf("with s5 new: %d pending (oldest %s), want 1 (s5)", n, o)
	}
}

// TestTrial15StoreURLSecretNotPrinted: S3 credentials given in a store URL
// (s3://KEY:SECRET@bucket/prefix, as region add's help offers) never
// appear in an error. Seen: `region repair dr --new-store 2` of a store
// whose bucket was deleted printed "new store 2
// (s3://trial15:secret15secret15@bucket2/p) is not a store without a
// region marker" (also for a store that holds the marker), and region add
// printed the URL whole for a store listed twice or two URLs of one place.
func TestTrial15StoreURLSecretNotPrinted(t *testing.T) {
	needRoot(t)
	endpoint, access, secret := s3test.Start(t)
	tmp := t.TempDir()
	h := filepath.Join(tmp, "host")
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, h, "init")
	var files []string
	for i := range 2 {
		d := filepath.Join(tmp, fmt.Sprintf("store%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		files = append(files, "--store", "file://"+d)
	}
	s3url := fmt.Sprintf("s3://%s:%s@trial15/p", access, secret)
	s3args := []string{"--s3-endpoint", endpoint, "--s3-path-style", "--key-file", key}
	add := func(stores ...string) []string {
		a := []string{"region", "add", "dr", "--data", "2", "--parity", "1"}
		for _, s := range stores {
			a = append(a, "--store", s)
		}
		return append(a, s3args...)
	}
	noSecret := func(what string, r result) {
		t.Helper()
		if strings.Contains(r.stderr+r.stdout, secret) {
			t.Errorf("%s printed the S3 secret: %q", what, r.stderr)
		}
		t.Logf("%s: %s", what, r.stderr)
	}
	noSecret("a store listed twice", fails(t, h, 2, add(files[1], s3url, s3url)...))
	noSecret("two URLs of one place", fails(t, h, 2, add(files[1], s3url, s3url+"/")...))
	r := snapfs(t, h, add(files[1], files[3], s3url)...)
	if r.code != 0 {
		t.Fatalf("region add: exit %d: %s", r.code, r.stderr)
	}
	noSecret("region add", r)
	mp := filepath.Join(tmp, "m")
	daemon(t, h, mp)
	trial15Snapshots(t, h, mp, "s1")
	noSecret("repair --new-store of a store holding the marker", fails(t, h, 2, "region", "repair", "dr", "--new-store", "2"))

	// The bucket is deleted (by hand, a lifecycle accident): check says
	// the store is unavailable (exit 11); repair --new-store 2 makes the
	// bucket again and puts back what the store held (it refused: "not a
	// store without a region marker ... not created", printing the
	// secret), and the region checks clean.
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for o := range mc.ListObjects(ctx, "trial15", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if err := mc.RemoveObject(ctx, "trial15", o.Key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := mc.RemoveBucket(ctx, "trial15"); err != nil {
		t.Fatal(err)
	}
	r = snapfs(t, h, "region", "check", "dr")
	if r.code != 11 {
		t.Fatalf("check with the bucket deleted: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	noSecret("check with the bucket deleted", r)
	r = snapfs(t, h, "region", "repair", "dr", "--new-store", "2")
	noSecret("repair --new-store of a deleted bucket", r)
	if r.code != 0 {
		t.Fatalf("repair --new-store 2 with the bucket deleted: exit %d: %s", r.code, r.stderr)
	}
	ok(t, h, "region", "check", "dr", "--read-data")
	// Store 0 away: s1 restores from stores 1 and 2 (the rebuilt bucket).
	if err := os.Rename(filepath.Join(tmp, "store0"), filepath.Join(tmp, "store0.away")); err != nil {
		t.Fatal(err)
	}
	ok(t, h, "restore", "--region", "dr", "--snapshot", "s1", "--disk", "vol1", "--to", "back")
	if fileSum(t, filepath.Join(mp, "disks", "back")) != fileSum(t, filepath.Join(mp, "snapshots", "s1", "vol1")) {
		t.Fatal("s1 restored from stores 1 and 2 differs from the snapshot")
	}
}

// TestTrial15SyncBesideHydratingDisk: a snapshot of a disk still
// hydrating from a region (restore --lazy, a low --rate) cannot be synced
// until the disk is whole (README). Sync refused it and stopped there:
// every later snapshot of every disk of the host stayed unshipped for as
// long as the disk hydrated (days, at a low rate), each hourly job failing,
// and the refused snapshot was left in the region as "copying". Now sync
// ships every other snapshot, leaves that one out without writing anything
// of it, and exits 5 (busy) naming it; once the disk is whole the next
// sync ships it.
func TestTrial15SyncBesideHydratingDisk(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	trial15Region(t, tmp, h)
	daemon(t, h, mp)
	trial15Snapshots(t, h, mp, "s1")
	ok(t, h, "restore", "--region", "dr", "--snapshot", "s1", "--disk", "vol1", "--to", "lz", "--lazy", "--rate", "4K")
	// region release is for the holds of a host gone for good: the hold
	// of a disk hydrating now (its host holds a live lock) is kept, exit
	// 15; it was released ("released 1 hold(s)"), and a prune after it
	// could take the blocks lz still reads.
	r := fails(t, h, 15, "region", "release", "dr", "s1")
	if !strings.Contains(r.stderr, "web1/lz") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("release of a live hold: %q", r.stderr)
	}
	if out := ok(t, h, "region", "snapshots", "dr"); !strings.Contains(out, "held by web1/lz") {
		t.Fatalf("after a refused release: %s", out)
	}
	ok(t, h, "snapshot", "create", "of-lazy", "--disk", "lz")
	ok(t, h, "disk", "create", "vol2", "--size", "4M")
	writeAt(t, filepath.Join(mp, "disks", "vol2"), 0, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "later", "--disk", "vol2")

	// The scheduled job (scripts/snapfs-sync.sh) goes on past the
	// snapshot left out (sync exit 5): check runs, the job exits 10 (it
	// stopped at the sync with exit 1, "sync FAILED", and skipped check).
	lockDir := filepath.Join(tmp, "locks")
	if err := os.Mkdir(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out := bare(t, repoFile(t, "scripts/snapfs-sync.sh")+" dr", "SNAPFS="+bin, "SNAPFS_STORE="+h, "SNAPFS_LOCK_DIR="+lockDir, "SNAPFS_KEEP_LAST=0")
	if code != 10 || !strings.Contains(out, "still hydrating") || strings.Contains(out, "FAILED") {
		t.Fatalf("sync job beside a hydrating disk: exit %d, want 10: %s", code, out)
	}
	r = fails(t, h, 5, "sync", "--region", "dr")
	if !strings.Contains(r.stderr, `"of-lazy"`) || !strings.Contains(r.stderr, "hydrating") {
		t.Fatalf("sync beside a hydrating disk: %q", r.stderr)
	}
	t.Logf("sync beside a hydrating disk: %s", r.stderr)
	var rs struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	states := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(ok(t, h, "--json", "region", "snapshots", "dr")), "\n") {
		if err := json.Unmarshal([]byte(line), &rs); err != nil {
			t.Fatalf("region snapshots --json: %q: %v", line, err)
		}
		states[rs.Name] = rs.State
	}
	if states["later"] != "available" || states["of-lazy"] != "" {
		t.Fatalf("region after the sync: %v, want later available and no of-lazy", states)
	}
	fileSum(t, filepath.Join(mp, "disks", "lz")) // reads fetch every block: whole
	waitHydrated(t, h, "lz", 30*time.Second)
	ok(t, h, "sync", "--region", "dr")
	ok(t, h, "region", "check", "dr", "--read-data")
	ok(t, h, "restore", "--region", "dr", "--snapshot", "of-lazy", "--disk", "lz", "--to", "back")
	if fileSum(t, filepath.Join(mp, "disks", "back")) != fileSum(t, filepath.Join(mp, "snapshots", "of-lazy", "lz")) {
		t.Fatal("of-lazy restored differs from the snapshot")
	}
}

// TestTrial15TwoSyncsOneRegion: two syncs of one host to one region at
// once (the daemon's policy copy beside the hourly job, or two commands)
// both shipped every new snapshot: twice the bytes to every store, one
// copy's packs left as garbage. They run one after the other now: the
// second finds the snapshot there and writes nothing.
func TestTrial15TwoSyncsOneRegion(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	trial15Region(t, tmp, h)
	daemon(t, h, mp)
	ok(t, h, "disk", "create", "big", "--size", "48M")
	writeAt(t, filepath.Join(mp, "disks", "big"), 0, randBytes(t, 48<<20))
	ok(t, h, "snapshot", "create", "s1", "--disk", "big")
	type res struct {
		out string
		err error
	}
	results := make(chan res, 2)
	for range 2 {
		go func() {
			cmd := exec.Command(bin, "--json", "sync", "--region", "dr")
			cmd.Env = append(os.Environ(), "SNAPFS_STORE="+h)
			out, err := cmd.Output()
			results <- res{string(out), err}
		}()
	}
	copied, written := 0, int64(0)
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("sync: %v: %s", r.err, r.out)
		}
		var st struct {
			Snapshots    int     `json:"snapshots"`
			BytesWritten []int64 `json:"bytes_written"`
		}
		jsonLine(t, r.out, "sync", &st)
		copied += st.Snapshots
		for _, b := range st.BytesWritten {
			written += b
		}
	}
	if copied != 1 || written > 100<<20 {
		t.Fatalf("two syncs at once copied %d snapshot(s), %d bytes in all; want 1 copy, about 72 MiB (48 MiB of random data as 2+1 shards)", copied, written)
	}
}

// TestTrial15SyncBesideLockedDisk: a snapshot of an encrypted disk whose
// key is locked (disk lock, as at night for a vault disk) cannot be read to
// be shipped. Sync stopped there (exit 15): no later snapshot of any disk
// of the host was shipped until the disk was unlocked, and the locked one
// was left in the region as "copying". Now sync ships the rest and leaves
// it out, exit 15 naming it; after unlock the next sync ships it.
func TestTrial15SyncBesideLockedDisk(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	trial15Region(t, tmp, h)
	daemon(t, h, mp)
	dk := filepath.Join(tmp, "disk.key")
	if err := os.WriteFile(dk, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, h, "disk", "create", "vault", "--size", "4M", "--encrypt", "--key-file", dk)
	writeAt(t, filepath.Join(mp, "disks", "vault"), 1<<20, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "v1", "--disk", "vault")
	ok(t, h, "disk", "lock", "vault")
	ok(t, h, "disk", "create", "vol2", "--size", "4M")
	writeAt(t, filepath.Join(mp, "disks", "vol2"), 0, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "later", "--disk", "vol2")

	// The scheduled job goes on past the snapshot left out (sync exit 15,
	// "not shipped"): prune and check run, the job exits 10; it took exit
	// 15 for a region locked by another host and stopped before prune, so
	// a disk locked every night stopped retention for good.
	lockDir := filepath.Join(tmp, "locks")
	if err := os.Mkdir(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out := bare(t, repoFile(t, "scripts/snapfs-sync.sh")+" dr", "SNAPFS="+bin, "SNAPFS_STORE="+h, "SNAPFS_LOCK_DIR="+lockDir, "SNAPFS_KEEP_LAST=10")
	if code != 10 || !strings.Contains(out, "whose key is locked") || !strings.Contains(out, "pruned") {
		t.Fatalf("sync job beside a locked disk: exit %d, want 10 after prune and check: %s", code, out)
	}
	r := fails(t, h, 15, "sync", "--region", "dr")
	if !strings.Contains(r.stderr, `"v1"`) || !strings.Contains(r.stderr, "unlocked") {
		t.Fatalf("sync beside a locked disk: %q", r.stderr)
	}
	t.Logf("sync beside a locked disk: %s", r.stderr)
	states := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(ok(t, h, "--json", "region", "snapshots", "dr")), "\n") {
		var rs struct{ Name, State string }
		if err := json.Unmarshal([]byte(line), &rs); err != nil {
			t.Fatalf("region snapshots --json: %q: %v", line, err)
		}
		states[rs.Name] = rs.State
	}
	if states["later"] != "available" || states["v1"] != "" {
		t.Fatalf("region after the sync: %v, want later available and no v1", states)
	}
	ok(t, h, "disk", "unlock", "vault", "--key-file", dk)
	ok(t, h, "sync", "--region", "dr")
	ok(t, h, "region", "check", "dr", "--read-data")
	ok(t, h, "restore", "--region", "dr", "--snapshot", "v1", "--disk", "vault", "--to", "back", "--encrypt", "--key-file", dk)
	if fileSum(t, filepath.Join(mp, "disks", "back")) != fileSum(t, filepath.Join(mp, "snapshots", "v1", "vault")) {
		t.Fatal("v1 restored differs from the snapshot")
	}
}
