package rowstore

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	flagSeed  = flag.Int64("seed", 0, "seed for the model test (0: time)")
	flagOps   = flag.Int("ops", 2500, "operations in the model test")
	flagSeeds = flag.String("seeds", "", "comma-separated seeds for the model test (default 1,2)")
)

// model is the in-memory truth the engine is compared with.
type model struct {
	disks     map[string]*mdisk
	snapshots map[string]map[string]*msnap // snapshot -> disk -> content
	snapOrder []string
	images    map[string][]byte
	imageBS   map[string]int
}

type mdisk struct {
	id   uint64
	bs   int
	data []byte
}

type msnap struct {
	diskID uint64
	bs     int
	data   []byte
}

func newModel() *model {
	return &model{disks: map[string]*mdisk{}, snapshots: map[string]map[string]*msnap{}, images: map[string][]byte{}, imageBS: map[string]int{}}
}

type modelRun struct {
	t      *testing.T
	rng    *rand.Rand
	dir    string
	opts   Options
	s      *Store
	m      *model
	seed   int64
	n      int
	op     int
	handle map[string]*Disk
	key    *Key // non-nil: half of the new disks are encrypted with it
}

func (r *modelRun) fatalf(format string, a ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d op %d: %s", r.seed, r.op, fmt.Sprintf(format, a...))
}

func (r *modelRun) must(err error, what string) {
	r.t.Helper()
	if err != nil {
		r.fatalf("%s: %v", what, err)
	}
}

func (r *modelRun) disk(name string) *Disk {
	if h, ok := r.handle[name]; ok {
		return h
	}
	h, err := r.s.OpenDisk(name)
	r.must(err, "open disk "+name)
	r.handle[name] = h
	return h
}

func (r *modelRun) closeHandles() {
	for n, h := range r.handle {
		h.Close()
		delete(r.handle, n)
	}
}

func (r *modelRun) pickDisk() string {
	names := make([]string, 0, len(r.m.disks))
	for n := range r.m.disks {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return ""
	}
	return names[r.rng.Intn(len(names))]
}

func (r *modelRun) pickSnapshot() string {
	if len(r.m.snapOrder) == 0 {
		return ""
	}
	return r.m.snapOrder[r.rng.Intn(len(r.m.snapOrder))]
}

func (r *modelRun) pickImage() string {
	names := make([]string, 0, len(r.m.images))
	for n := range r.m.images {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return ""
	}
	return names[r.rng.Intn(len(names))]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r *modelRun) newName(prefix string) string {
	r.n++
	return fmt.Sprintf("%s%d", prefix, r.n)
}

func (r *modelRun) createDisk() {
	name := r.newName("d")
	bs := []int{4 << 10, 8 << 10, 16 << 10}[r.rng.Intn(3)]
	size := int64(bs) * int64(8+r.rng.Intn(40))
	create := r.s.CreateDisk
	if r.key != nil && r.rng.Intn(2) == 0 {
		create = func(name string, size int64, bs int) (DiskInfo, error) {
			return r.s.CreateEncryptedDisk(name, size, bs, r.key)
		}
	}
	di, err := create(name, size, bs)
	r.must(err, "create disk")
	r.m.disks[name] = &mdisk{id: di.ID, bs: bs, data: make([]byte, size)}
}

func (r *modelRun) write() {
	name := r.pickDisk()
	md := r.m.disks[name]
	size := len(md.data)
	off := r.rng.Intn(size)
	n := 1 + r.rng.Intn(min(size-off, 3*md.bs))
	if r.rng.Intn(4) == 0 { // block aligned
		off = off / md.bs * md.bs
		n = min(size-off, md.bs*(1+r.rng.Intn(2)))
	}
	p := make([]byte, n)
	switch r.rng.Intn(5) {
	case 0: // zeros
	case 1:
		for i := range p {
			p[i] = byte(r.rng.Intn(3))
		}
	default:
		r.rng.Read(p)
	}
	got, err := r.disk(name).WriteAt(p, int64(off))
	r.must(err, fmt.Sprintf("write %d at %d of %s", n, off, name))
	if got != n {
		r.fatalf("short write %d of %d", got, n)
	}
	copy(md.data[off:], p)
}

func (r *modelRun) punch() {
	name := r.pickDisk()
	md := r.m.disks[name]
	off := r.rng.Intn(len(md.data))
	n := 1 + r.rng.Intn(len(md.data)-off)
	r.must(r.disk(name).PunchHole(int64(off), int64(n)), "punch")
	clear(md.data[off : off+n])
}

func (r *modelRun) snapshot() {
	names := sortedKeys(r.m.disks)
	r.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	names = names[:1+r.rng.Intn(min(3, len(names)))]
	sn := r.newName("s")
	_, err := r.s.CreateSnapshot(sn, names, "")
	r.must(err, "snapshot")
	ms := map[string]*msnap{}
	for _, n := range names {
		md := r.m.disks[n]
		ms[n] = &msnap{diskID: md.id, bs: md.bs, data: bytes.Clone(md.data)}
	}
	r.m.snapshots[sn] = ms
	r.m.snapOrder = append(r.m.snapOrder, sn)
}

func (r *modelRun) clone() {
	sn := r.pickSnapshot()
	if sn == "" {
		return
	}
	src := sortedKeys(r.m.snapshots[sn])[0]
	name := r.newName("c")
	di, err := r.s.CloneDisk(name, sn, src)
	r.must(err, "clone")
	ms := r.m.snapshots[sn][src]
	r.m.disks[name] = &mdisk{id: di.ID, bs: ms.bs, data: bytes.Clone(ms.data)}
}

func (r *modelRun) image() {
	sn := r.pickSnapshot()
	if sn == "" {
		return
	}
	src := sortedKeys(r.m.snapshots[sn])[0]
	name := r.newName("i")
	_, err := r.s.CreateImage(name, sn, src)
	r.must(err, "image")
	r.m.images[name] = bytes.Clone(r.m.snapshots[sn][src].data)
	r.m.imageBS[name] = r.m.snapshots[sn][src].bs
	if r.rng.Intn(2) == 0 {
		dn := r.newName("fromimg")
		di, err := r.s.CreateDiskFromImage(dn, name)
		r.must(err, "disk from image")
		r.m.disks[dn] = &mdisk{id: di.ID, bs: r.m.imageBS[name], data: bytes.Clone(r.m.images[name])}
	}
}

func (r *modelRun) rollback() {
	name := r.pickDisk()
	md := r.m.disks[name]
	var cands []string
	for _, sn := range r.m.snapOrder {
		if ms, ok := r.m.snapshots[sn][name]; ok && ms.diskID == md.id {
			cands = append(cands, sn)
		}
	}
	if len(cands) == 0 {
		return
	}
	sn := cands[r.rng.Intn(len(cands))]
	force := r.rng.Intn(2) == 0
	_, open := r.handle[name]
	err := r.s.RollbackDisk(name, sn, force)
	if open && !force {
		if !errors.Is(err, ErrBusy) {
			r.fatalf("rollback of open disk without force: %v, want ErrBusy", err)
		}
		return
	}
	r.must(err, "rollback "+name+" to "+sn)
	md.data = bytes.Clone(r.m.snapshots[sn][name].data)
}

func (r *modelRun) rename() {
	name := r.pickDisk()
	if h, ok := r.handle[name]; ok {
		if err := r.s.RenameDisk(name, name+"x"); !errors.Is(err, ErrBusy) {
			r.fatalf("rename of an open disk: %v, want ErrBusy", err)
		}
		h.Close()
		delete(r.handle, name)
	}
	nn := r.newName("r")
	r.must(r.s.RenameDisk(name, nn), "rename")
	r.m.disks[nn] = r.m.disks[name]
	delete(r.m.disks, name)
	// Snapshots keep the name the disk had when they were taken.
}

func (r *modelRun) deleteSomething() {
	switch r.rng.Intn(3) {
	case 0:
		if sn := r.pickSnapshot(); sn != "" {
			r.must(r.s.DeleteSnapshot(sn), "delete snapshot")
			delete(r.m.snapshots, sn)
			for i, n := range r.m.snapOrder {
				if n == sn {
					r.m.snapOrder = append(r.m.snapOrder[:i], r.m.snapOrder[i+1:]...)
					break
				}
			}
		}
	case 1:
		if im := r.pickImage(); im != "" {
			r.must(r.s.DeleteImage(im), "delete image")
			delete(r.m.images, im)
		}
	case 2:
		if len(r.m.disks) > 1 {
			name := r.pickDisk()
			if h, ok := r.handle[name]; ok {
				h.Close()
				delete(r.handle, name)
			}
			r.must(r.s.DeleteDisk(name, false), "delete disk")
			delete(r.m.disks, name)
		}
	}
}

func (r *modelRun) diff() {
	sn := r.pickSnapshot()
	if sn == "" {
		return
	}
	disk := sortedKeys(r.m.snapshots[sn])[0]
	from := &Point{Snapshot: sn, Disk: disk}
	oldData := r.m.snapshots[sn][disk].data
	bs := r.m.snapshots[sn][disk].bs
	var to Point
	var newData []byte
	// Another snapshot of the same disk, or the disk now.
	var others []string
	for _, o := range r.m.snapOrder {
		if ms, ok := r.m.snapshots[o][disk]; ok && ms.diskID == r.m.snapshots[sn][disk].diskID {
			others = append(others, o)
		}
	}
	if md, ok := r.m.disks[disk]; ok && md.id == r.m.snapshots[sn][disk].diskID && r.rng.Intn(2) == 0 {
		to, newData = Point{Disk: disk}, md.data
	} else {
		o := others[r.rng.Intn(len(others))]
		to, newData = Point{Snapshot: o, Disk: disk}, r.m.snapshots[o][disk].data
	}
	if r.rng.Intn(5) == 0 {
		from, oldData = nil, nil
	}
	want := map[uint64]bool{}
	for b := 0; b*bs < len(newData); b++ {
		nb := newData[b*bs : min(len(newData), (b+1)*bs)]
		var ob []byte
		if b*bs < len(oldData) {
			ob = oldData[b*bs : min(len(oldData), (b+1)*bs)]
		}
		if ob == nil {
			ob = make([]byte, len(nb))
		}
		if !bytes.Equal(nb, ob) {
			want[uint64(b)] = true
		}
	}
	got := map[uint64]bool{}
	_, err := r.s.Diff(from, to, func(c Change) error {
		if got[c.Block] {
			return fmt.Errorf("block %d reported twice", c.Block)
		}
		got[c.Block] = true
		b := int(c.Block)
		nb := newData[b*bs : min(len(newData), (b+1)*bs)]
		if c.Zero != isZero(nb) {
			return fmt.Errorf("block %d: zero=%v, model says %v", b, c.Zero, isZero(nb))
		}
		return nil
	})
	r.must(err, fmt.Sprintf("diff %v -> %v", from, to))
	for b := range want {
		if !got[b] {
			r.fatalf("diff %v -> %v misses block %d", from, to, b)
		}
	}
	for b := range got {
		if !want[b] {
			r.fatalf("diff %v -> %v reports unchanged block %d", from, to, b)
		}
	}
}

func (r *modelRun) reopen() {
	r.closeHandles()
	r.must(r.s.Close(), "close")
	s, err := Open(r.dir, r.opts)
	r.must(err, "reopen")
	r.s = s
}

// readCheck compares a random range (or everything) of a disk, snapshot or image.
func (r *modelRun) readCheck(all bool) {
	check := func(what string, ra interface {
		ReadAt([]byte, int64) (int, error)
	}, want []byte) {
		off, n := 0, len(want)
		if !all {
			off = r.rng.Intn(len(want))
			n = 1 + r.rng.Intn(len(want)-off)
		}
		got := make([]byte, n)
		k, err := ra.ReadAt(got, int64(off))
		if err != nil {
			r.fatalf("read %s at %d: %v", what, off, err)
		}
		if k != n || !bytes.Equal(got, want[off:off+n]) {
			i := 0
			for i < n && got[i] == want[off+i] {
				i++
			}
			r.fatalf("read %s [%d,%d): differs from the model at byte %d", what, off, off+n, off+i)
		}
	}
	for _, name := range sortedKeys(r.m.disks) {
		if all || r.rng.Intn(3) == 0 {
			check("disk "+name, r.disk(name), r.m.disks[name].data)
		}
	}
	for _, sn := range sortedKeys(r.m.snapshots) {
		for _, dn := range sortedKeys(r.m.snapshots[sn]) {
			if all || r.rng.Intn(6) == 0 {
				rd, err := r.s.OpenSnapshotDisk(sn, dn)
				r.must(err, "open snapshot disk")
				check("snapshot "+sn+"/"+dn, rd, r.m.snapshots[sn][dn].data)
				rd.Close()
			}
		}
	}
	for _, im := range sortedKeys(r.m.images) {
		if all || r.rng.Intn(4) == 0 {
			rd, err := r.s.OpenImage(im)
			r.must(err, "open image")
			check("image "+im, rd, r.m.images[im])
			rd.Close()
		}
	}
	// The space accounting equals a full count (accounting.go).
	r.must(r.s.verifyAccounting(), "space accounting")
	// So do the exclusive figures and live bytes (exclusive.go).
	mustExclusive(r.t, r.s, "exclusive figures")
}

func testOptions() Options {
	return Options{SegmentSize: 256 << 10, CacheBytes: 64 << 10, SyncInterval: -1, GCInterval: -1,
		IndexMemTableSize: 4 << 20, IndexBlockCacheSize: 8 << 20, ReserveBytes: 1 << 20, MinFreeBytes: 1 << 20,
		CloseGrace: -1} // busy at once (TestCloseGrace tests the wait)
}

func runModel(t *testing.T, seed int64, ops int) { runModelWith(t, seed, ops, nil) }

// runModelWith is runModel with half of the disks encrypted with key (nil:
// none); reopens unlock them with it.
func runModelWith(t *testing.T, seed int64, ops int, key *Key) {
	dir := fastTempDir(t)
	opts := testOptions()
	if key != nil {
		opts.Keys = []*Key{key}
	}
	if seed%2 == 0 {
		// The background write-back, commit and sync run beside the
		// operations (writeback.go).
		opts.SyncInterval = 5 * time.Millisecond
	}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &modelRun{t: t, rng: rand.New(rand.NewSource(seed)), dir: dir, opts: opts, s: s, m: newModel(), seed: seed, handle: map[string]*Disk{}, key: key}
	t.Cleanup(func() { r.closeHandles(); r.s.Close() })
	r.createDisk()
	for r.op = 0; r.op < ops; r.op++ {
		switch x := r.rng.Intn(100); {
		case x < 40:
			r.write()
		case x < 45:
			r.punch()
		case x < 52:
			r.must(r.disk(r.pickDisk()).Sync(), "sync")
		case x < 58:
			r.snapshot()
		case x < 61:
			r.clone()
		case x < 63:
			r.image()
		case x < 66:
			r.rollback()
		case x < 70:
			r.deleteSomething()
		case x < 75:
			r.diff()
		case x < 77:
			_, err := r.s.GC()
			r.must(err, "gc")
		case x < 79:
			r.reopen()
		case x < 81:
			if len(r.m.disks) < 6 {
				r.createDisk()
			}
		case x < 83:
			r.closeHandles()
		case x < 84:
			r.rename()
		default:
			r.readCheck(false)
		}
	}
	r.readCheck(true)
	_, err = r.s.GC()
	r.must(err, "final gc")
	r.reopen()
	r.readCheck(true)
}

// TestModel runs thousands of random operations against the engine and an
// in-memory model and compares every read and diff. Replay a failure with
// go test -run TestModel -seed N.
func TestModel(t *testing.T) {
	// Fixed seeds by default, so a run is reproducible; -seed N replays one;
	// SNAPFS_RANDOM_SEED=1 adds a fresh one (printed) to explore.
	seeds := []int64{1, 2}
	if *flagSeeds != "" {
		seeds = nil
		for _, f := range strings.Split(*flagSeeds, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("-seeds: %v", err)
			}
			seeds = append(seeds, n)
		}
	}
	if *flagSeed != 0 {
		seeds = []int64{*flagSeed}
	} else if os.Getenv("SNAPFS_RANDOM_SEED") == "1" {
		seeds = append(seeds, time.Now().UnixNano())
	}
	ops := *flagOps
	if raceEnabled && ops > 1000 {
		ops = 1000
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d, %d operations (replay: go test ./rowstore -run TestModel -seed %d -ops %d)", seed, ops, seed, ops)
			runModel(t, seed, ops)
		})
	}
}
