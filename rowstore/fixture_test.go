package rowstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// The store fixture: a small store written by the format of snapfs v1 (the
// code of commit 4d99516), kept under testdata/store-v1 with a manifest of
// the SHA-256 of every disk, snapshot and image. Every later format must
// open it (upgrading in place is fine: the test works on a copy), read it
// byte for byte and check it clean. Regenerate (only when the fixture
// itself must change, never for a new format) with
//
//	go test ./rowstore -run TestWriteFixture -write-fixture
var writeFixture = flag.Bool("write-fixture", false, "rewrite rowstore/testdata/store-v1 with this build's format")

const fixtureDir = "testdata/store-v1"

// fixtureManifest is testdata/store-v1.json.
type fixtureManifest struct {
	Format    int               `json:"format"`
	Disks     map[string]string `json:"disks"`     // name -> SHA-256 of the whole disk
	Snapshots map[string]string `json:"snapshots"` // "snapshot/disk" -> SHA-256
	Images    map[string]string `json:"images"`    // name -> SHA-256
	Sizes     map[string]int64  `json:"sizes"`     // same keys as above, "disk:", "snap:", "image:" prefixed
}

// TestWriteFixture writes the fixture (only with -write-fixture).
func TestWriteFixture(t *testing.T) {
	if !*writeFixture {
		// A generator, not a test: without its flag it neither skips nor fails.
		t.Log("writes testdata only with -write-fixture")
		return
	}
	if err := os.RemoveAll(fixtureDir); err != nil {
		t.Fatal(err)
	}
	opts := Options{SegmentSize: 256 << 10, SyncInterval: -1, GCInterval: -1, IndexMemTableSize: 1 << 20, IndexBlockCacheSize: 1 << 20}
	if err := Create(fixtureDir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(fixtureDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(7))
	block := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.CreateDisk("alpha", 1<<20, 4096)
	must(err)
	_, err = s.CreateDisk("beta", 2<<20, 0)
	must(err)
	a, err := s.OpenDisk("alpha")
	must(err)
	b, err := s.OpenDisk("beta")
	must(err)
	write := func(d *Disk, p []byte, off int64) {
		t.Helper()
		if _, err := d.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	// alpha: scattered 4 KiB blocks, a partial block, a zero block.
	for i := 0; i < 40; i++ {
		write(a, block(4096), int64(rng.Intn(256))*4096)
	}
	write(a, block(1000), 5000)
	write(a, make([]byte, 4096), 8192)
	// beta: a run of 16 KiB blocks and a few partial writes.
	write(b, block(160<<10), 64<<10)
	write(b, block(3000), 1<<20+77)
	must(a.Sync())
	must(b.Sync())
	_, err = s.CreateSnapshot("s1", []string{"alpha", "beta"}, "manual")
	must(err)
	for i := 0; i < 20; i++ {
		write(a, block(4096), int64(rng.Intn(256))*4096)
	}
	must(a.PunchHole(64<<10, 32<<10)) // holes over data
	write(b, block(32<<10), 0)
	must(b.PunchHole(96<<10, 48<<10))
	must(a.Sync())
	must(b.Sync())
	_, err = s.CreateSnapshot("s2", []string{"alpha", "beta"}, "policy")
	must(err)
	_, err = s.CreateSnapshot("s3", []string{"beta"}, "manual")
	must(err)
	_, err = s.CreateImage("img-alpha", "s1", "alpha")
	must(err)
	_, err = s.CloneDisk("gamma", "s1", "beta")
	must(err)
	g, err := s.OpenDisk("gamma")
	must(err)
	write(g, block(20<<10), 200<<10)
	must(g.Sync())
	must(g.Close())
	// Rollback of alpha to s1, then new writes on the rolled-back head.
	must(a.Close())
	must(s.RollbackDisk("alpha", "s1", false))
	a, err = s.OpenDisk("alpha")
	must(err)
	write(a, block(4096), 12*4096)
	must(a.Sync())
	must(a.Close())
	must(b.Close())
	_, err = s.CreateSnapshot("s4", []string{"alpha", "gamma"}, "manual")
	must(err)
	must(s.DeleteSnapshot("s3"))
	man := fixtureRead(t, s)
	man.Format = 1
	must(s.Close())
	os.Remove(filepath.Join(fixtureDir, "lock"))
	js, err := json.MarshalIndent(man, "", "  ")
	must(err)
	must(os.WriteFile(fixtureDir+".json", append(js, '\n'), 0o644))
	var total int64
	filepath.WalkDir(fixtureDir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			fi, _ := e.Info()
			total += fi.Size()
			t.Logf("%s %d", p, fi.Size())
		}
		return nil
	})
	t.Logf("fixture: %d bytes", total)
}

// fixtureRead hashes every disk, snapshot and image of s.
func fixtureRead(t *testing.T, s *Store) fixtureManifest {
	t.Helper()
	m := fixtureManifest{Disks: map[string]string{}, Snapshots: map[string]string{}, Images: map[string]string{}, Sizes: map[string]int64{}}
	hash := func(r io.ReaderAt, size int64) string {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	disks, err := s.ListDisks()
	if err != nil {
		t.Fatal(err)
	}
	for _, di := range disks {
		d, err := s.OpenDisk(di.Name)
		if err != nil {
			t.Fatal(err)
		}
		m.Disks[di.Name] = hash(d, d.Size())
		m.Sizes["disk:"+di.Name] = d.Size()
		d.Close()
	}
	snaps, err := s.ListSnapshots()
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range snaps {
		for _, sd := range si.Disks {
			r, err := s.OpenSnapshotDisk(si.Name, sd.Name)
			if err != nil {
				t.Fatal(err)
			}
			m.Snapshots[si.Name+"/"+sd.Name] = hash(r, r.Size())
			m.Sizes["snap:"+si.Name+"/"+sd.Name] = r.Size()
			r.Close()
		}
	}
	imgs, err := s.ListImages()
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range imgs {
		r, err := s.OpenImage(im.Name)
		if err != nil {
			t.Fatal(err)
		}
		m.Images[im.Name] = hash(r, r.Size())
		m.Sizes["image:"+im.Name] = r.Size()
		r.Close()
	}
	return m
}

// copyTree copies the regular files of src into dst (never writing to src).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(out, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// openFixture copies the fixture to a temporary directory and returns it
// with the manifest.
func openFixture(t *testing.T) (string, fixtureManifest) {
	t.Helper()
	js, err := os.ReadFile(fixtureDir + ".json")
	if err != nil {
		t.Fatalf("fixture manifest: %v", err)
	}
	var want fixtureManifest
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(fastTempDir(t), "store")
	copyTree(t, fixtureDir, dir)
	return dir, want
}

func compareManifest(t *testing.T, got, want fixtureManifest) {
	t.Helper()
	for _, kind := range []struct {
		name      string
		got, want map[string]string
	}{{"disk", got.Disks, want.Disks}, {"snapshot", got.Snapshots, want.Snapshots}, {"image", got.Images, want.Images}} {
		var names []string
		for n := range kind.want {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if g, ok := kind.got[n]; !ok {
				t.Errorf("%s %s missing", kind.name, n)
			} else if g != kind.want[n] {
				t.Errorf("%s %s: sha256 %s, want %s", kind.name, n, g, kind.want[n])
			}
		}
		if len(kind.got) != len(kind.want) {
			t.Errorf("%d %ss, want %d: %v", len(kind.got), kind.name, len(kind.want), kind.got)
		}
	}
	for k, v := range want.Sizes {
		if got.Sizes[k] != v {
			t.Errorf("size of %s: %d, want %d", k, got.Sizes[k], v)
		}
	}
}

// TestFixtureV1 opens a copy of the v1 fixture with this build and reads
// every disk, snapshot and image byte for byte against the manifest.
func TestFixtureV1(t *testing.T) {
	dir, want := openFixture(t)
	opts := Options{SyncInterval: -1, GCInterval: -1}
	for round := 0; round < 2; round++ { // the second open sees what the first (maybe upgrading) one left
		s, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("open fixture (round %d): %v", round, err)
		}
		compareManifest(t, fixtureRead(t, s), want)
		rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
		if err != nil || !rep.OK() || !rep.Complete {
			t.Errorf("check of the fixture (round %d): %v %+v", round, err, rep)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// And the upgraded fixture rebuilds from its log alone.
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	compareManifest(t, fixtureRead(t, s), want)
}
