package segment

import (
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// gateFS holds (or fails) the Sync of segment files opened before it was
// armed (not the creation of the next one): a slow or failing background
// seal, on demand.
type gateFS struct {
	vfs.FS
	mu      sync.Mutex
	hold    chan struct{} // closed: syncs go on
	fail    error         // returned by held syncs once released
	waiting int           // syncs held now
	gen     int           // arm calls
}

func (g *gateFS) wrap(f vfs.File, name string) *gateFile {
	g.mu.Lock()
	defer g.mu.Unlock()
	return &gateFile{File: f, g: g, name: name, gen: g.gen}
}

type gateFile struct {
	vfs.File
	g    *gateFS
	name string
	gen  int // the gate's arming when the file was opened: only older files are held
}

func (g *gateFS) Create(name string) (vfs.File, error) {
	f, err := g.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return g.wrap(f, name), nil
}

func (g *gateFS) OpenReadWrite(name string) (vfs.File, error) {
	f, err := g.FS.OpenReadWrite(name)
	if err != nil {
		return nil, err
	}
	return g.wrap(f, name), nil
}

// arm makes the next syncs wait until release (failing with err if not nil).
func (g *gateFS) arm(err error) {
	g.mu.Lock()
	g.hold, g.fail = make(chan struct{}), err
	g.gen++
	g.mu.Unlock()
}

func (g *gateFS) release() {
	g.mu.Lock()
	if g.hold != nil {
		close(g.hold)
	}
	g.mu.Unlock()
}

func (g *gateFS) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (f *gateFile) Sync() error {
	f.g.mu.Lock()
	hold, fail := f.g.hold, f.g.fail
	if hold != nil && strings.HasSuffix(f.name, ".seg") && f.gen < f.g.gen {
		select {
		case <-hold:
			hold = nil
		default:
			f.g.waiting++
		}
	} else {
		hold = nil
	}
	f.g.mu.Unlock()
	if hold != nil {
		<-hold
		f.g.mu.Lock()
		f.g.waiting--
		f.g.mu.Unlock()
		if fail != nil {
			return fail
		}
	}
	return f.File.Sync()
}

// waitHeld waits until n syncs are held.
func waitHeld(t *testing.T, g *gateFS, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); g.held() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d syncs held, want %d", g.held(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSealInBackground: a rotation does not wait for the old segment's
// fsync (it runs in the background), the new segment writes nothing to its
// file before that fsync ended, and Sync waits for it. A crash while it is
// held leaves a prefix of the log (scanAll checks the order) holding every
// record synced before, never a record of the new segment without the old
// one's tail.
func TestSealInBackground(t *testing.T) {
	mem := vfs.NewCrashFS()
	g := &gateFS{FS: mem}
	l := mustOpen(t, g, "log", 4096)
	appendN(t, l, 0, 5)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	first := l.Active()
	g.arm(nil)
	// Append until the log rotated: the rotation must return with the
	// old segment's sync held.
	done := make(chan int)
	go func() {
		i := 5
		for l.Active() == first {
			if _, err := l.Append(rec(i)); err != nil {
				t.Error(err)
				break
			}
			i++
		}
		// A few records in the new segment: gathered, not written.
		for j := 0; j < 3; j++ {
			if _, err := l.Append(rec(i)); err != nil {
				t.Error(err)
			}
			i++
		}
		done <- i
	}()
	var n int
	select {
	case n = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("appends blocked by the old segment's sync")
	}
	waitHeld(t, g, 1)
	if got, _ := scanAll(t, l); len(got) != n {
		t.Fatalf("%d records readable while the seal is held, want %d", len(got), n)
	}
	synced := make(chan error, 1)
	go func() { synced <- l.Sync() }()
	select {
	case err := <-synced:
		t.Fatalf("Sync returned (%v) while the sealed segment's sync is held", err)
	case <-time.After(50 * time.Millisecond):
	}
	// Crash now, in several ways: a prefix of the log, with at least the
	// five synced records.
	for seed := int64(0); seed < 20; seed++ {
		c := mem.Crash(seed)
		l2, err := Open(c, "log", Options{SegmentSize: 4096})
		if err != nil {
			t.Fatalf("seed %d: reopen: %v", seed, err)
		}
		got, _ := scanAll(t, l2)
		if len(got) < 5 || len(got) > n {
			t.Fatalf("seed %d: %d records, want 5 to %d", seed, len(got), n)
		}
		for _, p := range got {
			if p.Segment > first {
				t.Fatalf("seed %d: record at %v found, in the segment after the one whose sync was held", seed, p)
			}
		}
		l2.Close()
	}
	g.release()
	if err := <-synced; err != nil && !errors.Is(err, vfs.ErrCrashed) {
		t.Fatal(err)
	}
}

// TestSealFails: a failed background sync of a sealed segment breaks the
// log: the next Sync returns its error (nothing appended after it is
// acknowledged), and so do later appends and Close.
func TestSealFails(t *testing.T) {
	g := &gateFS{FS: vfs.NewCrashFS()}
	l := mustOpen(t, g, "log", 4096)
	first := l.Active()
	injected := errors.New("injected sync failure")
	g.arm(injected)
	i := 0
	for l.Active() == first {
		if _, err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		i++
	}
	waitHeld(t, g, 1)
	g.release()
	if err := l.Sync(); !errors.Is(err, injected) {
		t.Fatalf("Sync after a failed seal: %v", err)
	}
	if _, err := l.Append(rec(i)); !errors.Is(err, injected) {
		t.Fatalf("Append after a failed seal: %v", err)
	}
	if err := l.Close(); !errors.Is(err, injected) {
		t.Fatalf("Close after a failed seal: %v", err)
	}
}

// TestSealRemoveAndClose: removing a sealed segment, or closing the log,
// while its sync is still running waits for that sync (its file is not
// closed under it), and Close reports it.
func TestSealRemoveAndClose(t *testing.T) {
	g := &gateFS{FS: vfs.NewCrashFS()}
	l := mustOpen(t, g, "log", 4096)
	first := l.Active()
	g.arm(nil)
	for i := 0; l.Active() == first; i++ {
		if _, err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitHeld(t, g, 1)
	removed := make(chan error, 1)
	go func() { removed <- l.RemoveSegmentsUnsynced([]ids.Segment{first}) }()
	select {
	case err := <-removed:
		t.Fatalf("removal returned (%v) while the segment's sync is held", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.release()
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSealGatesWrites: while the sealed segment's sync is held, the next
// segment gathers up to maxGather and then waits: nothing of it reaches its
// file, so a crash meanwhile never keeps a record of it without the whole
// segment before.
func TestSealGatesWrites(t *testing.T) {
	mem := vfs.NewCrashFS()
	g := &gateFS{FS: mem}
	const segSize = 5 << 20
	l := mustOpen(t, g, "log", segSize)
	i := 0
	first := l.Active()
	g.arm(nil)
	for l.Active() == first {
		if _, err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		i++
	}
	waitHeld(t, g, 1)
	var mu sync.Mutex
	n := i
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		var bytes int64
		for j := n; bytes < maxGather+writeBehind; j++ {
			p, err := l.Append(rec(j))
			if errors.Is(err, vfs.ErrCrashed) {
				return // released after the crash below: the write fails
			}
			if err != nil {
				t.Error(err)
				return
			}
			bytes += int64(p.Length)
			mu.Lock()
			n = j + 1
			mu.Unlock()
		}
	}()
	select {
	case <-blocked:
		t.Fatal("appends past maxGather did not wait for the sealed segment's sync")
	case <-time.After(200 * time.Millisecond):
	}
	mu.Lock()
	appended := n
	mu.Unlock()
	for seed := int64(0); seed < 5; seed++ {
		c := mem.Crash(seed)
		l2, err := Open(c, "log", Options{SegmentSize: segSize})
		if err != nil {
			t.Fatalf("seed %d: reopen: %v", seed, err)
		}
		got, _ := scanAll(t, l2)
		if len(got) > appended {
			t.Fatalf("seed %d: %d records, %d appended", seed, len(got), appended)
		}
		for _, p := range got {
			if p.Segment > first {
				t.Fatalf("seed %d: record at %v kept, with the segment before not synced", seed, p)
			}
		}
		l2.Close()
	}
	g.release()
	<-blocked
}

// TestSealNoSpaceKeepsReserve: a sealed segment's fsync that fails for lack
// of space breaks the log like any failed seal; the writer that meets it
// does not call the no-space hook (the engine would give back its space
// reserve for a write that cannot be tried again).
func TestSealNoSpaceKeepsReserve(t *testing.T) {
	g := &gateFS{FS: vfs.NewCrashFS()}
	l := mustOpen(t, g, "log", 4096)
	hooked := 0
	l.SetNoSpaceHook(func() bool { hooked++; return true })
	first := l.Active()
	g.arm(syscall.ENOSPC)
	i := 0
	for l.Active() == first {
		if _, err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		i++
	}
	waitHeld(t, g, 1)
	g.release()
	for j := 0; j < 64; j++ { // until a write meets the failed seal
		if _, err := l.Append(rec(i + j)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Append after a seal without space: %v", err)
			}
			break
		}
	}
	if err := l.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync after a seal without space: %v", err)
	}
	if hooked != 0 {
		t.Errorf("no-space hook called %d times for a failed seal", hooked)
	}
	l.Close()
}
