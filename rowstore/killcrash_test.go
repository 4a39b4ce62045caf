package rowstore

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The kill test runs the engine in a child process (this test binary, re-run
// with SNAPFS_KILL_CHILD set) on a real directory, doing a seeded random
// workload, and SIGKILLs it at a random moment: unlike TestCrash, nothing is
// closed, Badger included. The child reports on a pipe when each operation
// starts and when it returns; the parent regenerates the same operations from
// the seed, so it knows what was acknowledged, reopens the store and checks
// the durability invariants:
//
//   - every write acknowledged by a Sync (or a snapshot, which syncs) is there;
//   - every acknowledged snapshot is there with exactly its content, and a
//     snapshot whose creation was cut short is either absent or exact;
//   - every block of every disk reads its content at the last acknowledged
//     sync or one written since (never an error, never other data);
//   - acknowledged clones, rollbacks and deletes happened.
//
// "race" operations run 2–3 writes and hole punches on overlapping ranges of
// one disk concurrently, then Sync: every block must then hold the result of
// one order of them (finding 7 of issue 7: a PunchHole racing a write, or a
// flush not atomic with its sync, would show as a block no order explains).
var (
	flagKillRounds = flag.Int("kill-rounds", 0, "rounds of TestKill (default 10; 4 with -short or -race)")
	flagKillSeed   = flag.Int64("kill-seed", 0, "seed of TestKill's first round (default: from the clock, printed)")
	flagKillOps    = flag.Int("kill-ops", 400, "operations a TestKill child runs at most before it is killed")
)

const killChildEnv = "SNAPFS_KILL_CHILD" // "dir seed ops bs": run as the child

type kopKind int

const (
	kWrite kopKind = iota
	kPunch
	kSync
	kSnap
	kClone
	kRollback
	kDelSnap
	kDelDisk
	kGC
	kRace
)

func (k kopKind) String() string {
	return [...]string{"write", "punch", "sync", "snapshot", "clone", "rollback", "delete-snapshot", "delete-disk", "gc", "race"}[k]
}

// kop is one operation of the workload.
type kop struct {
	kind   kopKind
	disk   string
	off, n int    // write, punch
	data   []byte // write
	name   string // snapshot, clone
	snap   string // clone, rollback source; delete-snapshot target
	race   []kop  // race: writes and punches run concurrently, then Sync
}

// kgen generates the workload; the child and the parent run it from the same
// seed and get the same operations (it assumes every operation succeeds: a
// failure in the child fails the test).
type kgen struct {
	rng      *rand.Rand
	bs, size int
	disks    []string          // live disks, in creation order
	snaps    []string          // live snapshots
	snapDisk map[string]string // snapshot -> its disk
	nSnap    int
	nClone   int
	after    []kop // operations that must come next
}

func newKgen(seed int64, bs, size int) *kgen {
	return &kgen{rng: rand.New(rand.NewSource(seed)), bs: bs, size: size, disks: []string{"a"}, snapDisk: map[string]string{}}
}

func (g *kgen) rangeOp(kind kopKind, disk string, maxLen int) kop {
	off := g.rng.Intn(g.size)
	n := 1 + g.rng.Intn(min(g.size-off, maxLen))
	if g.rng.Intn(3) == 0 { // block-aligned: whole blocks, whole-block holes
		off -= off % g.bs
		n = g.bs * (1 + g.rng.Intn(max(1, min(g.size-off, maxLen)/g.bs)))
		n = min(n, g.size-off)
	}
	o := kop{kind: kind, disk: disk, off: off, n: n}
	if kind == kWrite {
		o.data = make([]byte, n)
		if g.rng.Intn(5) > 0 {
			g.rng.Read(o.data)
		}
	}
	return o
}

func (g *kgen) next() kop {
	if len(g.after) > 0 {
		o := g.after[0]
		g.after = g.after[1:]
		return o
	}
	disk := g.disks[g.rng.Intn(len(g.disks))]
	switch x := g.rng.Intn(100); {
	case x < 45:
		return g.rangeOp(kWrite, disk, 3*g.bs)
	case x < 55:
		return g.rangeOp(kPunch, disk, 8*g.bs)
	case x < 68:
		return kop{kind: kSync, disk: disk}
	case x < 76:
		// Two or three writes and punches on one region of the disk, at
		// once, then a whole-block overwrite of that region so the model
		// knows the content again.
		base := g.rng.Intn(g.size - 4*g.bs)
		base -= base % g.bs
		o := kop{kind: kRace, disk: disk}
		for range 2 + g.rng.Intn(2) {
			kind := kWrite
			if g.rng.Intn(2) == 0 {
				kind = kPunch
			}
			off := base + g.rng.Intn(3*g.bs)
			n := 1 + g.rng.Intn(base+4*g.bs-off)
			r := kop{kind: kind, disk: disk, off: off, n: n}
			if kind == kWrite {
				r.data = make([]byte, n)
				g.rng.Read(r.data)
			}
			o.race = append(o.race, r)
		}
		w := kop{kind: kWrite, disk: disk, off: base, n: 4 * g.bs, data: make([]byte, 4*g.bs)}
		g.rng.Read(w.data)
		g.after = append(g.after, w)
		return o
	case x < 84:
		g.nSnap++
		name := fmt.Sprintf("s%d", g.nSnap)
		g.snaps = append(g.snaps, name)
		g.snapDisk[name] = disk
		return kop{kind: kSnap, disk: disk, name: name}
	case x < 88:
		if len(g.snaps) == 0 || len(g.disks) > 4 {
			return kop{kind: kGC}
		}
		sn := g.snaps[g.rng.Intn(len(g.snaps))]
		g.nClone++
		name := fmt.Sprintf("c%d", g.nClone)
		g.disks = append(g.disks, name)
		return kop{kind: kClone, name: name, snap: sn, disk: g.snapDisk[sn]}
	case x < 92:
		var mine []string
		for _, sn := range g.snaps {
			if g.snapDisk[sn] == disk {
				mine = append(mine, sn)
			}
		}
		if len(mine) == 0 {
			return kop{kind: kSync, disk: disk}
		}
		return kop{kind: kRollback, disk: disk, snap: mine[g.rng.Intn(len(mine))]}
	case x < 95:
		if len(g.snaps) < 3 {
			return kop{kind: kGC}
		}
		i := g.rng.Intn(len(g.snaps))
		sn := g.snaps[i]
		g.snaps = append(g.snaps[:i:i], g.snaps[i+1:]...)
		return kop{kind: kDelSnap, snap: sn}
	case x < 97:
		if len(g.disks) < 2 {
			return kop{kind: kGC}
		}
		i := 1 + g.rng.Intn(len(g.disks)-1) // "a" stays
		d := g.disks[i]
		g.disks = append(g.disks[:i:i], g.disks[i+1:]...)
		return kop{kind: kDelDisk, disk: d}
	default:
		return kop{kind: kGC}
	}
}

// TestKillChild is the child's body; it does nothing unless run by TestKill.
func TestKillChild(t *testing.T) {
	spec := os.Getenv(killChildEnv)
	if spec == "" {
		return // not a child: nothing to do (this is not a skip)
	}
	var dir string
	var seed int64
	var ops, bs int
	if _, err := fmt.Sscan(spec, &dir, &seed, &ops, &bs); err != nil {
		t.Fatalf("bad %s %q: %v", killChildEnv, spec, err)
	}
	report := os.NewFile(3, "report")
	w := bufio.NewWriter(report)
	say := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush() // unbuffered: the parent must see an ack before the kill
	}
	if err := runKillChild(dir, seed, ops, bs, say); err != nil {
		say("error %v", strings.ReplaceAll(err.Error(), "\n", " "))
		t.Fatal(err)
	}
	say("finished")
	// Wait to be killed, with every handle open and nothing closed.
	time.Sleep(time.Minute)
}

func killOptions(seed int64) Options {
	opts := testOptions()
	rng := rand.New(rand.NewSource(seed ^ 0x5eed))
	// Background commits and GC while the workload runs, in some rounds.
	if rng.Intn(2) == 0 {
		opts.SyncInterval = time.Duration(5+rng.Intn(50)) * time.Millisecond
	}
	if rng.Intn(3) == 0 {
		opts.GCInterval = time.Duration(20+rng.Intn(100)) * time.Millisecond
	}
	if rng.Intn(2) == 0 {
		opts.CacheBytes = 16 << 10
	}
	return opts
}

func runKillChild(dir string, seed int64, ops, bs int, say func(string, ...any)) error {
	s, err := Open(dir, killOptions(seed))
	if err != nil {
		return err
	}
	g := newKgen(seed, bs, killDiskBlocks*bs)
	handles := map[string]*Disk{}
	open := func(name string) (*Disk, error) {
		if h, ok := handles[name]; ok {
			return h, nil
		}
		h, err := s.OpenDisk(name)
		if err == nil {
			handles[name] = h
		}
		return h, err
	}
	rangeOp := func(h *Disk, o kop) error {
		if o.kind == kWrite {
			_, err := h.WriteAt(o.data, int64(o.off))
			return err
		}
		return h.PunchHole(int64(o.off), int64(o.n))
	}
	for i := 0; i < ops; i++ {
		o := g.next()
		say("start %d", i)
		var err error
		switch o.kind {
		case kWrite, kPunch:
			var h *Disk
			if h, err = open(o.disk); err == nil {
				err = rangeOp(h, o)
			}
		case kSync:
			var h *Disk
			if h, err = open(o.disk); err == nil {
				err = h.Sync()
			}
		case kRace:
			var h *Disk
			if h, err = open(o.disk); err != nil {
				break
			}
			var wg sync.WaitGroup
			errs := make([]error, len(o.race))
			for j, r := range o.race {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[j] = rangeOp(h, r)
				}()
			}
			// A sync racing them too: it may make any of them durable.
			wg.Add(1)
			go func() { defer wg.Done(); _ = h.Sync() }()
			wg.Wait()
			if err = errors.Join(errs...); err == nil {
				err = h.Sync()
			}
		case kSnap:
			_, err = s.CreateSnapshot(o.name, []string{o.disk}, "")
		case kClone:
			_, err = s.CloneDisk(o.name, o.snap, o.disk)
		case kRollback:
			err = s.RollbackDisk(o.disk, o.snap, true)
		case kDelSnap:
			err = s.DeleteSnapshot(o.snap)
		case kDelDisk:
			if h, ok := handles[o.disk]; ok {
				h.Close()
				delete(handles, o.disk)
			}
			err = s.DeleteDisk(o.disk, false)
		case kGC:
			_, err = s.GC()
		}
		if err != nil {
			return fmt.Errorf("op %d (%v %s): %w", i, o.kind, o.disk, err)
		}
		say("done %d", i)
	}
	return nil
}

const killDiskBlocks = 48

// killModel is what the parent knows of the store: crashModel's per-block
// candidates, plus what an operation cut short by the kill may have done.
type killModel struct {
	*crashModel
	maybeSnap map[string]map[string][]byte // snapshot being created: absent, or exactly this
	maybeDisk map[string][]byte            // clone being created: absent, or exactly this
	goneSnap  map[string]bool              // deleted (acknowledged): must be absent
	goneDisk  map[string]bool
	maybeGone map[string]bool // snapshot or disk being deleted: either
	raceFinal [][]byte        // the disk after each order of the race in flight
	raceRange [2]int          // its blocks
}

func newKillModel(bs, size int) *killModel {
	m := &killModel{crashModel: newCrashModel(bs), maybeSnap: map[string]map[string][]byte{}, maybeDisk: map[string][]byte{},
		goneSnap: map[string]bool{}, goneDisk: map[string]bool{}, maybeGone: map[string]bool{}}
	m.data["a"], m.allowed["a"] = make([]byte, size), map[int][][]byte{}
	return m
}

// keepOld makes sure block b's content before a change is a candidate.
func (m *killModel) keepOld(disk string, b int) {
	if _, ok := m.allowed[disk][b]; !ok {
		m.allowed[disk][b] = [][]byte{m.block(disk, b)}
	}
}

func applyRange(d []byte, o kop) {
	if o.kind == kWrite {
		copy(d[o.off:], o.data)
	} else {
		clear(d[o.off : o.off+o.n])
	}
}

func blocksOf(o kop, bs int) (first, end int) { return o.off / bs, (o.off + o.n + bs - 1) / bs }

// begin records what o may have done if the child dies before it returns.
func (m *killModel) begin(o kop) {
	switch o.kind {
	case kWrite, kPunch:
		d := m.data[o.disk]
		first, end := blocksOf(o, m.bs)
		for b := first; b < end; b++ {
			m.keepOld(o.disk, b)
		}
		applyRange(d, o)
		for b := first; b < end; b++ {
			m.allowed[o.disk][b] = append(m.allowed[o.disk][b], m.block(o.disk, b))
		}
	case kRace:
		// Every block may hold the result of any prefix of any order.
		d := m.data[o.disk]
		first, end := o.race[0].off/m.bs, 0
		for _, r := range o.race {
			f, e := blocksOf(r, m.bs)
			first, end = min(first, f), max(end, e)
		}
		for b := first; b < end; b++ {
			m.keepOld(o.disk, b)
		}
		var final [][]byte
		for _, perm := range permutations(len(o.race)) {
			c := bytes.Clone(d)
			for _, i := range perm {
				applyRange(c, o.race[i])
				for b := first; b < end; b++ {
					m.allowed[o.disk][b] = append(m.allowed[o.disk][b], bytes.Clone(c[b*m.bs:(b+1)*m.bs]))
				}
			}
			final = append(final, c)
		}
		m.raceFinal = final
		m.raceRange = [2]int{first, end}
		copy(d, final[0]) // overwritten by the next operation (kgen.after)
	case kSnap:
		m.maybeSnap[o.name] = map[string][]byte{o.disk: bytes.Clone(m.data[o.disk])}
	case kClone:
		m.maybeDisk[o.name] = bytes.Clone(m.snaps[o.snap][o.disk])
	case kRollback:
		want := m.snaps[o.snap][o.disk]
		for b := 0; b*m.bs < len(want); b++ {
			m.keepOld(o.disk, b)
			m.allowed[o.disk][b] = append(m.allowed[o.disk][b], bytes.Clone(want[b*m.bs:(b+1)*m.bs]))
		}
		copy(m.data[o.disk], want)
	case kDelSnap:
		m.maybeGone[o.snap] = true
	case kDelDisk:
		m.maybeGone[o.disk] = true
	}
}

// done records that o returned: what it did is now acknowledged.
func (m *killModel) done(o kop) {
	switch o.kind {
	case kSync:
		m.ack(o.disk)
	case kRace:
		m.ack(o.disk)
		for b := m.raceRange[0]; b < m.raceRange[1]; b++ {
			var cands [][]byte
			for _, c := range m.raceFinal {
				cands = append(cands, bytes.Clone(c[b*m.bs:(b+1)*m.bs]))
			}
			m.allowed[o.disk][b] = cands
		}
	case kSnap:
		m.snaps[o.name] = m.maybeSnap[o.name]
		m.snapList = append(m.snapList, o.name)
		delete(m.maybeSnap, o.name)
		m.ack(o.disk)
	case kClone:
		m.data[o.name] = m.maybeDisk[o.name]
		m.allowed[o.name] = map[int][][]byte{}
		delete(m.maybeDisk, o.name)
	case kRollback:
		m.ack(o.disk)
	case kDelSnap:
		delete(m.snaps, o.snap)
		for i, sn := range m.snapList {
			if sn == o.snap {
				m.snapList = append(m.snapList[:i:i], m.snapList[i+1:]...)
				break
			}
		}
		delete(m.maybeGone, o.snap)
		m.goneSnap[o.snap] = true
	case kDelDisk:
		delete(m.data, o.disk)
		delete(m.allowed, o.disk)
		delete(m.maybeGone, o.disk)
		m.goneDisk[o.disk] = true
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// check verifies the reopened store against the model.
func (m *killModel) check(t *testing.T, s *Store, what string) {
	t.Helper()
	// A disk or snapshot whose deletion was cut short may be either; one
	// that exists must be whole, so it stays in the model when present.
	for name := range m.maybeGone {
		if _, ok := m.data[name]; ok {
			if _, err := s.GetDisk(name); err != nil {
				delete(m.data, name)
			}
		}
		if _, ok := m.snaps[name]; ok {
			if _, err := s.GetSnapshot(name); err != nil {
				delete(m.snaps, name)
				for i, sn := range m.snapList {
					if sn == name {
						m.snapList = append(m.snapList[:i:i], m.snapList[i+1:]...)
						break
					}
				}
			}
		}
	}
	checkCrashState(t, s, m.crashModel, what)
	for name, want := range m.maybeSnap {
		for dn, content := range want {
			r, err := s.OpenSnapshotDisk(name, dn)
			if err != nil {
				continue // absent: the kill came first
			}
			got := make([]byte, len(content))
			_, err = r.ReadAt(got, 0)
			r.Close()
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("%s: snapshot %s, cut short by the kill, exists but differs from the disk when it was taken (err %v)", what, name, err)
			}
		}
	}
	for name, content := range m.maybeDisk {
		h, err := s.OpenDisk(name)
		if err != nil {
			continue
		}
		got := make([]byte, len(content))
		_, err = h.ReadAt(got, 0)
		h.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s: clone %s, cut short by the kill, exists but differs from its snapshot (err %v)", what, name, err)
		}
	}
	for name := range m.goneSnap {
		if _, err := s.GetSnapshot(name); err == nil {
			t.Fatalf("%s: snapshot %s was deleted (acknowledged) but is back", what, name)
		}
	}
	for name := range m.goneDisk {
		if _, err := s.GetDisk(name); err == nil {
			t.Fatalf("%s: disk %s was deleted (acknowledged) but is back", what, name)
		}
	}
}

// TestKill runs rounds of: a child process doing the workload on a fresh
// store, SIGKILLed after a random number of operations plus a random
// delay; reopen; check. Seeds are printed; -kill-seed replays one.
func TestKill(t *testing.T) {
	rounds := *flagKillRounds
	if rounds == 0 {
		rounds = 10
		if testing.Short() || raceEnabled {
			rounds = 4
		}
	}
	seed := *flagKillSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	t.Logf("TestKill: %d rounds from seed %d (replay one with -run TestKill -kill-rounds 1 -kill-seed N)", rounds, seed)
	var st killStats
	start := time.Now()
	for r := 0; r < rounds; r++ {
		s := seed + int64(r)
		if !t.Run(fmt.Sprint(s), func(t *testing.T) { killRound(t, s, &st) }) {
			t.Logf("round with seed %d failed", s)
			break
		}
	}
	t.Logf("TestKill: %d rounds in %v: %d operations acknowledged before the kills (%d syncs, %d snapshots, %d races), %d kills mid-operation, %d blocks checked",
		st.rounds, time.Since(start).Round(time.Millisecond), st.acked, st.syncs, st.snaps, st.races, st.midOp, st.blocks)
}

type killStats struct {
	rounds, acked, syncs, snaps, races, midOp, blocks int
}

func killRound(t *testing.T, seed int64, st *killStats) {
	rng := rand.New(rand.NewSource(seed))
	bs := []int{4096, 16384}[rng.Intn(2)]
	ops := 1 + rng.Intn(*flagKillOps)
	dir := filepath.Join(t.TempDir(), "store")
	opts := testOptions()
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	size := killDiskBlocks * bs
	if _, err := s.CreateDisk("a", int64(size), bs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %d", killChildEnv, dir, seed, ops, bs))
	cmd.ExtraFiles = []*os.File{pw}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	// Kill after a random number of acknowledged operations, a random
	// time after that ack (0–3 ms): mostly in the middle of the next one.
	killAt := rng.Intn(ops + 1)
	delay := time.Duration(rng.Intn(3000)) * time.Microsecond
	m := newKillModel(bs, size)
	g := newKgen(seed, bs, size)
	var cur *kop
	lines := bufio.NewScanner(pr)
	acked, finished := 0, false
	timer := make(chan struct{})
	var once sync.Once
	kill := func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGKILL)
			close(timer)
		})
	}
	if killAt == 0 {
		time.AfterFunc(delay+time.Duration(rng.Intn(200))*time.Millisecond, kill)
	}
	var hung atomic.Bool
	watchdog := time.AfterFunc(2*time.Minute, func() { hung.Store(true); kill() })
	defer watchdog.Stop()
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch f[0] {
		case "start":
			i, _ := strconv.Atoi(f[1])
			o := g.next()
			if i != acked {
				t.Fatalf("child started op %d, want %d", i, acked)
			}
			m.begin(o)
			cur = &o
		case "done":
			if cur == nil {
				kill()
				t.Fatalf("seed %d: child reported %q without a start", seed, lines.Text())
			}
			m.done(*cur)
			switch cur.kind {
			case kSync:
				st.syncs++
			case kSnap:
				st.snaps++
			case kRace:
				st.races++
			}
			cur = nil
			acked++
			if acked == killAt {
				time.AfterFunc(delay, kill)
			}
		case "finished":
			finished = true
			kill()
		case "error":
			kill()
			t.Fatalf("seed %d: child failed: %s\n%s", seed, lines.Text(), stderr.String())
		}
	}
	kill()
	<-timer
	err = cmd.Wait()
	killed = true
	if hung.Load() {
		t.Fatalf("seed %d: the child made no progress for 2 minutes (deadlock?): %s", seed, stderr.String())
	}
	// The child never exits by itself, so the race detector's exit status
	// cannot report a race there: its report on stderr does.
	if strings.Contains(stderr.String(), "DATA RACE") {
		t.Fatalf("seed %d: the race detector found a race in the child:\n%s", seed, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("seed %d: child did not die of SIGKILL (%v): %s", seed, err, stderr.String())
	}
	if cur != nil {
		st.midOp++
	}
	st.rounds++
	st.acked += acked

	what := fmt.Sprintf("seed %d (%d ops acknowledged, killed in %v, block size %d, finished %v)", seed, acked, func() any {
		if cur != nil {
			return cur.kind
		}
		return "between ops"
	}(), bs, finished)
	s2, err := Open(dir, testOptions())
	if err != nil {
		t.Fatalf("%s: reopen after SIGKILL: %v", what, err)
	}
	defer s2.Close()
	m.check(t, s2, what)
	mustExclusive(t, s2, what)  // exclusive figures (exclusive.go)
	mustCheckClean(t, s2, what) // both streams' tails recovered, every record sound
	for _, d := range m.data {
		st.blocks += len(d) / bs
	}
	// The store works after recovery, GC included.
	if _, err := s2.GC(); err != nil {
		t.Fatalf("%s: gc after recovery: %v", what, err)
	}
	h, err := s2.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(bytes.Repeat([]byte{7}, bs), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
}
