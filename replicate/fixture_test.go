package replicate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// The region fixture (issue 7 item 10): a small region written by the
// format of its day (region-v1: manifest version 2, no hosts, no locks),
// which every later version must read byte for byte and check clean.
// TestFixtureRegionV1Make (run with -make-region-fixture) wrote it; keep the
// program so a reader sees exactly what the stores hold.
var makeRegionFixture = flag.Bool("make-region-fixture", false, "rewrite replicate/testdata/region-v4 with today's code (never needed once committed)")

// The fixtures: region-v1 (version 1 packs, manifest version 2, no
// hosts), region-v2 (version 2 packs: written by main at b9e3661 with
// the generator below, its directory and key label changed), region-v3
// (version 3 packs with delta chunks, index version 3 on every store:
// written by this generator, then TestFixtureRegionV3Make, before index
// version 4, with directory region-v3 and key label "v3"), region-v4 (the
// same with index version 4, each index on its m+1 = 2 homes of the 3
// stores: TestFixtureRegionMake).
const (
	fixtureDir   = "testdata/region-v1"
	fixtureDirV2 = "testdata/region-v2"
	fixtureDirV3 = "testdata/region-v3"
	fixtureDirV4 = "testdata/region-v4"
)

// fixtureExpect is testdata/region-v1/expected.json.
type fixtureExpect struct {
	Region string `json:"region"`
	K      int    `json:"k"`
	M      int    `json:"m"`
	// Disks: snapshot -> disk -> SHA-256 of the restored disk, hex.
	Disks map[string]map[string]string `json:"disks"`
}

func fixtureWrite(t *testing.T, h *host, disk string, seed uint64, blocks []uint64, blockSize int) {
	t.Helper()
	d, err := h.rs.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed), 7})
	buf := make([]byte, blockSize)
	for _, b := range blocks {
		rng.Read(buf[:blockSize/2]) // half random, half zeros: compressible
		clear(buf[blockSize/2:])
		if _, err := d.WriteAt(buf, int64(b)*int64(blockSize)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestFixtureRegionMake writes region-v4 (region-v3 before index version
// 4): as region-v1 was written, with 16 KiB blocks and 4 KiB rewrites
// between the snapshots, so f2's changed blocks are delta chunks over
// f1's.
func TestFixtureRegionMake(t *testing.T) {
	if !*makeRegionFixture {
		// A generator, not a test: without its flag it neither skips nor fails.
		t.Log("writes the region fixture only with -make-region-fixture")
		return
	}
	ctx := context.Background()
	const fbs = 16 << 10
	h := newHost(t, replicate.Options{})
	for _, d := range []string{"da", "db"} {
		if _, err := h.rs.CreateDisk(d, 256<<10, fbs); err != nil {
			t.Fatal(err)
		}
	}
	fixtureWrite(t, h, "da", 1, span(0, 16), fbs)
	fixtureWrite(t, h, "db", 2, span(4, 16), fbs)
	snapshot(t, h, "f1", "da", "db")
	root, err := filepath.Abs(fixtureDirV4)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i := range 3 {
		urls = append(urls, "file://"+filepath.Join(root, "stores", "s"+string(rune('0'+i))))
	}
	key := filepath.Join(root, "key")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := os.MkdirAll(filepath.Join(root, "stores", "s"+string(rune('0'+i))), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keyb := sha256.Sum256([]byte("snapfs region fixture v4"))
	if err := os.WriteFile(key, []byte(hex.EncodeToString(keyb[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "fx", K: 2, M: 1, Stores: urls, KeyFile: key}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.Sync(ctx, "fx", nil, nil); err != nil {
		t.Fatal(err)
	}
	fixtureWrite(t, h, "da", 3, span(12, 14), fbs) // random halves: 2 of 4 pieces, deltas too
	for b := range int64(8) {                      // one 4 KiB piece of each: deltas
		writeAt(t, h, "da", b*fbs+(b%4)*4096, bytes.Repeat([]byte{byte(b + 1)}, 4096))
		writeAt(t, h, "db", (b+5)*fbs+((b+1)%4)*4096, bytes.Repeat([]byte{byte(b + 101)}, 4096))
	}
	snapshot(t, h, "f2", "da", "db") // a delta manifest over f1, with delta chunks
	st, err := h.mgr.Sync(ctx, "fx", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Deltas != 18 {
		t.Fatalf("f2 shipped %d deltas, want 18", st.Deltas)
	}
	exp := fixtureExpect{Region: "fx", K: 2, M: 1, Disks: map[string]map[string]string{}}
	for _, s := range []string{"f1", "f2"} {
		exp.Disks[s] = map[string]string{}
		for _, d := range []string{"da", "db"} {
			sum := sha256.Sum256(readSnapshot(t, h, s, d))
			exp.Disks[s][d] = hex.EncodeToString(sum[:])
		}
	}
	b, _ := json.MarshalIndent(exp, "", "  ")
	if err := os.WriteFile(filepath.Join(root, "expected.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("fixture written to %s (%d bytes of stores)", root, storeBytes(t, []string{filepath.Join(root, "stores")}))
}

// copyTree copies the fixture's files (the test may write to the copy: a
// lock, a host object).
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if e.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFixtureRegionV1 restores every snapshot of the v1 region fixture byte
// for byte with today's code and checks the region clean.
func TestFixtureRegionV1(t *testing.T) { fixtureRestore(t, fixtureDir) }

// TestFixtureRegionV2: the same of region-v2 (version 2 packs).
func TestFixtureRegionV2(t *testing.T) { fixtureRestore(t, fixtureDirV2) }

// TestFixtureRegionV3: the same of region-v3, whose f2 holds delta chunks
// (restored eagerly and read lazily, byte for byte; check rebuilds them).
func TestFixtureRegionV3(t *testing.T) { fixtureDeltas(t, fixtureDirV3) }

// TestFixtureRegionV4: the same of region-v4 (index version 4), whose
// every index is on exactly its m+1 homes, and which restores from any k
// of its stores (each one taken away in turn).
func TestFixtureRegionV4(t *testing.T) {
	for name, on := range objectsOn(t, []string{
		filepath.Join(fixtureDirV4, "stores", "s0"), filepath.Join(fixtureDirV4, "stores", "s1"), filepath.Join(fixtureDirV4, "stores", "s2"),
	}, "index") {
		if homes := slices.Sorted(slices.Values(replicate.IndexHomes(2, 1, name))); !slices.Equal(on, homes) {
			t.Fatalf("fixture index %s is on stores %v, want its homes %v", name, on, homes)
		}
	}
	fixtureDeltas(t, fixtureDirV4)
}

// fixtureDeltas is fixtureRestore of a fixture with delta chunks, which
// are also read lazily.
func fixtureDeltas(t *testing.T, dir string) {
	h, exp := fixtureRestore(t, dir)
	ctx := context.Background()
	n, _, err := h.mgr.DeltaChunks(ctx, exp.Region)
	if err != nil || n != 18 {
		t.Fatalf("fixture holds %d delta entries (%v), want 18", n, err)
	}
	for _, disk := range []string{"da", "db"} {
		d, err := h.mgr.OpenRemoteDisk(ctx, exp.Region, "f2", disk)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, d.Size())
		_, err = d.ReadAt(buf, 0)
		d.Close()
		sum := sha256.Sum256(buf)
		if err != nil || hex.EncodeToString(sum[:]) != exp.Disks["f2"][disk] {
			t.Fatalf("lazy read of f2/%s: %v, sha256 %x", disk, err, sum)
		}
	}
}

func fixtureRestore(t *testing.T, dir string) (*host, fixtureExpect) {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatalf("region fixture missing: %v", err)
	}
	var exp fixtureExpect
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(tmpDir(t), "fixture")
	copyTree(t, dir, root)
	if err := os.Chmod(filepath.Join(root, "key"), 0o600); err != nil { // git keeps 0644
		t.Fatal(err)
	}
	var urls []string
	for i := range exp.K + exp.M {
		urls = append(urls, "file://"+filepath.Join(root, "stores", "s"+string(rune('0'+i))))
	}
	h := newHost(t, replicate.Options{})
	info, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: exp.Region, K: exp.K, M: exp.M, Stores: urls, KeyFile: filepath.Join(root, "key")})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Attached {
		t.Fatal("fixture region not attached: its config objects were not found")
	}
	remote, err := h.mgr.ListRemote(ctx, exp.Region)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	deltas := 0
	for _, r := range remote {
		names = append(names, r.Name)
		for _, d := range r.Disks {
			if d.Delta {
				deltas++
			}
		}
		if r.State != replicate.StateAvailable {
			t.Errorf("fixture snapshot %q is %s", r.Name, r.State)
		}
	}
	if want := slices.Sorted(mapKeys(exp.Disks)); !slices.Equal(slices.Sorted(slices.Values(names)), want) {
		t.Fatalf("fixture lists %v, want %v", names, want)
	}
	if deltas == 0 {
		t.Error("fixture holds no delta manifest")
	}
	n := 0
	for _, snap := range slices.Sorted(mapKeys(exp.Disks)) {
		for _, disk := range slices.Sorted(mapKeys(exp.Disks[snap])) {
			to := "fx-" + snap + "-" + disk
			if _, err := h.mgr.Restore(ctx, exp.Region, snap, disk, to, nil); err != nil {
				t.Fatalf("restore %s/%s: %v", snap, disk, err)
			}
			sum := sha256.Sum256(readDisk(t, h, to))
			if got := hex.EncodeToString(sum[:]); got != exp.Disks[snap][disk] {
				t.Errorf("restored %s/%s: sha256 %s, want %s", snap, disk, got, exp.Disks[snap][disk])
			}
			n++
		}
	}
	rep, err := h.mgr.Check(ctx, exp.Region, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Unindexed) > 0 {
		t.Fatalf("fixture region not clean: %+v", rep)
	}
	t.Logf("fixture %s: %d disks restored byte for byte, check clean (%d deltas checked)", dir, n, rep.DeltasChecked)
	// From any k stores: each store taken away in turn (its directory
	// renamed), the newest snapshot restores byte for byte.
	snaps := slices.Sorted(mapKeys(exp.Disks))
	newest := snaps[len(snaps)-1]
	restoreNewest := func(when string) {
		t.Helper()
		for _, disk := range slices.Sorted(mapKeys(exp.Disks[newest])) {
			to := "fx-" + when + "-" + disk
			if _, err := h.mgr.Restore(ctx, exp.Region, newest, disk, to, nil); err != nil {
				t.Fatalf("%s: restore %s/%s: %v", when, newest, disk, err)
			}
			sum := sha256.Sum256(readDisk(t, h, to))
			if got := hex.EncodeToString(sum[:]); got != exp.Disks[newest][disk] {
				t.Fatalf("%s: restored %s/%s: sha256 %s, want %s", when, newest, disk, got, exp.Disks[newest][disk])
			}
		}
	}
	for i, u := range urls {
		if i >= exp.M+exp.K || exp.M < 1 {
			break
		}
		d := strings.TrimPrefix(u, "file://")
		if err := os.Rename(d, d+".away"); err != nil {
			t.Fatal(err)
		}
		restoreNewest(fmt.Sprintf("without-s%d", i))
		if err := os.Rename(d+".away", d); err != nil {
			t.Fatal(err)
		}
	}
	// Prune keeps the newest snapshot (of every host) and all it needs.
	if _, err := h.mgr.Prune(ctx, exp.Region, replicate.PruneOptions{KeepLast: 1, AllHosts: true}); err != nil {
		t.Fatalf("prune: %v", err)
	}
	if rep, err := h.mgr.Check(ctx, exp.Region, true, nil); err != nil || !rep.OK() {
		t.Fatalf("check after prune: %+v %v", rep, err)
	}
	restoreNewest("pruned")
	return h, exp
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
