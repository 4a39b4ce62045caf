package replicate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
	"github.com/snapfs/snapfs/rowstore"
)

// clockedStore is a file:// store whose own clock is off by off() from
// the real one: each object it puts gets the store's time then as its
// mtime (what store.ModTime reports). Tests whose fake clock stands for
// time passing give the stores the same clock (time passes for the stores
// too); a test of one host's skew gives them none.
type clockedStore struct {
	store.Store
	off func() time.Duration
}

func (s clockedStore) Put(ctx context.Context, name string, data []byte) error {
	if err := s.Store.Put(ctx, name, data); err != nil {
		return err
	}
	if d := s.off(); d != 0 {
		p := filepath.Join(strings.TrimPrefix(s.Location(), "file://"), filepath.FromSlash(name))
		t := time.Now().Add(d)
		if err := os.Chtimes(p, t, t); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

func (s clockedStore) ModTime(ctx context.Context, name string) (time.Time, error) {
	return store.ModTime(ctx, s.Store, name)
}

func (s clockedStore) ReadInto(ctx context.Context, name string, off int64, bufs ...[]byte) (int64, error) {
	return store.ReadInto(ctx, s.Store, name, off, bufs...)
}

// clockedOpen opens file:// stores whose clock is off by off() (see
// clockedStore), with fault injection through faults[i] when faults is
// not nil.
func clockedOpen(off func() time.Duration, faults []*store.Faults) func(context.Context, int, string, store.Options) (store.Store, error) {
	return func(ctx context.Context, i int, url string, o store.Options) (store.Store, error) {
		s, err := store.Open(ctx, url, o)
		if err != nil {
			return s, err
		}
		if faults != nil {
			s = store.Wrap(s, store.WrapOptions{Faults: faults[i]})
		}
		return clockedStore{Store: s, off: off}, nil
	}
}

// newClockedFleetHost is newFleetHost whose stores keep clk's time: clk
// stands for time passing, for the hosts and the stores alike.
func newClockedFleetHost(t *testing.T, name string, n int, opts replicate.Options, clk *fakeClock) *fleetHost {
	t.Helper()
	faults := make([]*store.Faults, n)
	for i := range faults {
		faults[i] = store.NewFaults()
	}
	opts.HostName = name
	opts.OpenStore = clockedOpen(func() time.Duration { return time.Duration(clk.off.Load()) }, faults)
	return &fleetHost{host: newHost(t, opts), faults: faults}
}

// skewedPair makes host a (true clock) and host b (clock off by skew) on
// one 2+1 region "r1" of file:// stores, a with a synced snapshot.
func skewedPair(t *testing.T, skew time.Duration) (a, b *fleetHost, dirs []string) {
	t.Helper()
	ctx := context.Background()
	dirs, urls := storeDirs(t, 3)
	key := keyFile(t, 7)
	a = newFleetHost(t, "a", 3, replicate.Options{})
	b = newFleetHost(t, "b", 3, replicate.Options{Now: func() time.Time { return time.Now().Add(skew) }})
	for _, h := range []*fleetHost{a, b} {
		if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 2, M: 1, Stores: urls, KeyFile: key}); err != nil {
			t.Fatal(err)
		}
	}
	mkDisk(t, a.host, "va", 16)
	writeBlocks(t, a.host, "va", 1, span(0, 8))
	snapshot(t, a.host, "a1", "va")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	return a, b, dirs
}

// TestShare7SkewRefusesPrune: a host whose clock is off from the stores'
// by more than MaxClockSkew (ahead or behind) may not prune, repair or
// unlock: the error wraps ErrClockSkew (and ErrConflict: exit 14), names
// the skew and the direction, and nothing in the region changes. Its sync
// still runs (others judge its lock and packs by the stores' clocks).
func TestShare7SkewRefusesPrune(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		skew time.Duration
		word string
	}{{-2 * time.Hour, "2h0m0s behind"}, {45 * time.Minute, "45m0s ahead of"}} {
		a, b, dirs := skewedPair(t, tc.skew)
		mkDisk(t, b.host, "vb", 16)
		writeBlocks(t, b.host, "vb", 2, span(0, 8))
		snapshot(t, b.host, "b1", "vb")
		if _, err := b.mgr.Sync(ctx, "r1", nil, nil); err != nil {
			t.Fatalf("skew %s: b's sync: %v", tc.skew, err)
		}
		before := listAll(t, dirs)
		_, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
		if !errors.Is(err, replicate.ErrClockSkew) || !errors.Is(err, replicate.ErrConflict) {
			t.Fatalf("skew %s: b's prune: %v, want ErrClockSkew (an ErrConflict)", tc.skew, err)
		}
		if msg := err.Error(); !strings.Contains(msg, tc.word) || !strings.Contains(msg, "NTP") {
			t.Errorf("skew %s: the error does not say how far and which way the clock is off, or what to do: %q", tc.skew, msg)
		}
		if _, err := b.mgr.Repair(ctx, "r1", nil); !errors.Is(err, replicate.ErrClockSkew) {
			t.Errorf("skew %s: b's repair: %v, want ErrClockSkew", tc.skew, err)
		}
		if _, err := b.mgr.Unlock(ctx, "r1", false); !errors.Is(err, replicate.ErrClockSkew) {
			t.Errorf("skew %s: b's unlock: %v, want ErrClockSkew", tc.skew, err)
		}
		if after := listAll(t, dirs); !slicesEqual(before, after) {
			t.Errorf("skew %s: the refused operations changed the region:\nbefore %v\nafter  %v", tc.skew, before, after)
		}
		// a's clock is right: its prune runs and keeps b's snapshot.
		if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true}); err != nil {
			t.Fatalf("skew %s: a's prune: %v", tc.skew, err)
		}
		if _, err := a.mgr.RestoreFrom(ctx, "r1", "b", "b1", "vb", "back", nil); err != nil {
			t.Fatalf("skew %s: restore b1 after a's prune: %v", tc.skew, err)
		}
	}
}

// TestShare7SkewWithinBoundRuns: a skew within MaxClockSkew is no error.
func TestShare7SkewWithinBoundRuns(t *testing.T) {
	_, b, _ := skewedPair(t, -5*time.Minute)
	if _, err := b.mgr.Prune(context.Background(), "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true}); err != nil {
		t.Fatalf("prune with a clock 5 min behind: %v", err)
	}
}

// TestShare7DeadLockOfSkewedHostStale: a lock whose holder is gone is
// stale after LockStale by the stores' clocks, whatever its holder's clock
// said: a holder whose clock ran 2 h ahead (its refresh time 2 h in the
// future) does not block the region for 2 h more, and a prune removes its
// lock but not the packs it wrote.
func TestShare7DeadLockOfSkewedHostStale(t *testing.T) {
	ctx := context.Background()
	a, c, dirs := skewedPair(t, 2*time.Hour)
	mkDisk(t, c.host, "vc", 64)
	writeBlocks(t, c.host, "vc", 3, span(0, 64))
	snapshot(t, c.host, "c1", "vc")
	// c stops (for good, as far as the region can tell) at its index
	// puts: its lock and packs are on the stores, no index.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.eachFault(func(f *store.Faults) {
		f.DelayMatching(func(m store.Method, n string) time.Duration {
			if m == store.MethodPut && strings.HasPrefix(n, "index/") {
				once.Do(func() { close(entered) })
				<-release
			}
			return 0
		})
	})
	done := make(chan error, 1)
	go func() {
		_, err := c.mgr.Sync(ctx, "r1", nil, nil)
		done <- err
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("c's sync ended before its index put: %v", err)
	}
	defer func() { close(release); <-done }()
	// While it is live, a's prune waits.
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1}); !errors.Is(err, replicate.ErrLocked) {
		t.Fatalf("a's prune while c's lock is fresh by the stores' clocks: %v, want ErrLocked", err)
	}
	// The stores' clocks say c's lock was last put 31 min ago.
	old := time.Now().Add(-replicate.DefaultLockStale - time.Minute)
	var locks []string
	for _, d := range dirs {
		ents, err := os.ReadDir(filepath.Join(d, "locks"))
		if err != nil || len(ents) != 1 {
			t.Fatalf("locks on %s: %v %v, want c's", d, ents, err)
		}
		p := filepath.Join(d, "locks", ents[0].Name())
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		locks = append(locks, p)
	}
	packs := len(listObjs(t, dirs[0], "packs"))
	st, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil {
		t.Fatalf("a's prune after c's lock went stale by the stores' clocks (its own clock 2 h ahead): %v", err)
	}
	for _, p := range locks {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("c's stale lock %s not removed: %v", p, err)
		}
	}
	if n := len(listObjs(t, dirs[0], "packs")); n != packs || st.OrphansDeleted != 0 {
		t.Errorf("a's prune deleted c's unindexed packs, put minutes ago by the stores' clocks: packs %d -> %d, %+v", packs, n, st)
	}
}

func listAll(t *testing.T, dirs []string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		_ = filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				out = append(out, p+"@"+fi.ModTime().String())
			}
			return nil
		})
	}
	return out
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// reopen opens the store in dir (closed before) with a new Manager.
func reopen(t *testing.T, dir string) *host {
	t.Helper()
	rs, err := rowstore.Open(dir, rowstore.Options{SyncInterval: -1, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := replicate.New(dir, rs, replicate.Options{PackSize: 4 << 20})
	if err != nil {
		rs.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close(); rs.Close() })
	return &host{dir: dir, rs: rs, mgr: mgr}
}

func closeHost(h *host) {
	h.mgr.Close()
	h.rs.Close()
}

// TestShare7CopiedStoreNewIdentity: a store copied to another place (cp
// -a: a backup restored elsewhere, a cloned machine) takes a new host
// identity at its first open, keeping the old one in Previous; the
// original keeps its own. Whatever the copy prunes, the original's synced
// snapshot stays restorable; the copy can still restore the old
// identity's snapshots.
func TestShare7CopiedStoreNewIdentity(t *testing.T) {
	ctx := context.Background()
	a, _, _ := skewedPair(t, 0)
	orig := a.mgr.Host()
	want := readSnapshot(t, a.host, "a1", "va")
	closeHost(a.host)
	cp := a.dir + "-copy"
	if out, err := exec.Command("cp", "-a", a.dir, cp).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	t.Cleanup(func() { os.RemoveAll(cp) })
	c := reopen(t, cp)
	ch := c.mgr.Host()
	if ch.ID == orig.ID || ch.Name != orig.Name || len(ch.Previous) != 1 || ch.Previous[0] != orig.ID {
		t.Fatalf("the copy's identity %+v, want a new id named %q with previous [%s]", ch, orig.Name, orig.ID)
	}
	if again, err := replicate.LoadHost(cp); err != nil || again.ID != ch.ID {
		t.Fatalf("the copy's identity is not kept: %+v %v", again, err)
	}
	a2 := reopen(t, a.dir)
	if h := a2.mgr.Host(); h.ID != orig.ID || len(h.Previous) != 0 {
		t.Fatalf("the original's identity changed: %+v, was %+v", h, orig)
	}

	// The copy lives its own life: new data, sync, prune of its own.
	writeBlocks(t, c, "va", 9, span(0, 8))
	snapshot(t, c, "c1", "va")
	if _, err := c.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.mgr.Restore(ctx, "r1", "a1", "va", "back", nil); err != nil {
		t.Fatalf("the original's a1 after its copy's prune: %v", err)
	}
	if got := readDisk(t, a2, "back"); !bytes.Equal(got, want) {
		t.Fatal("a1 restored differs")
	}
	st, err := a2.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st.Pruned != 0 {
		t.Fatalf("the original's sync after its copy's prune: %+v %v", st, err)
	}
	// The copy restores the old identity's a1 by that identity.
	if _, err := c.mgr.RestoreFrom(ctx, "r1", orig.ID.String(), "a1", "va", "old", nil); err != nil {
		t.Fatalf("the copy restoring its previous identity's a1: %v", err)
	}
	if got := readDisk(t, c, "old"); !bytes.Equal(got, want) {
		t.Fatal("a1 restored by the copy differs")
	}
}

// TestShare7MovedStoreKeepsIdentity: a store moved (mv within its file
// system: the same directory inode) is the same host.
func TestShare7MovedStoreKeepsIdentity(t *testing.T) {
	h := newHost(t, replicate.Options{})
	id := h.mgr.Host()
	closeHost(h)
	mv := h.dir + "-moved"
	if err := os.Rename(h.dir, mv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(mv) })
	m := reopen(t, mv)
	if got := m.mgr.Host(); got.ID != id.ID || len(got.Previous) != 0 || !got.Seat.IsZero() && got.Seat != id.Seat {
		t.Fatalf("moved store's identity %+v, want %+v", got, id)
	}
}

// TestShare7HostV1BoundToSeat: an identity written before seats (host.json
// version 1) keeps its id and is bound to where it is opened; a damaged
// seat is ErrCorrupt.
func TestShare7HostV1BoundToSeat(t *testing.T) {
	dir := t.TempDir()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	id := "0123456789abcdef0123456789abcdef"
	sum := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%s", 1, id, "old", created.Format(time.RFC3339Nano)))
	v1 := fmt.Sprintf(`{"version": 1, "id": %q, "name": "old", "created": %q, "checksum": %q}`, id, created.Format(time.RFC3339Nano), hex.EncodeToString(sum[:]))
	p := filepath.Join(dir, replicate.HostFile)
	if err := os.WriteFile(p, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := replicate.EnsureHost(dir, "")
	if err != nil || h.ID.String() != id || h.Name != "old" || h.Seat.IsZero() || len(h.Previous) != 0 {
		t.Fatalf("v1 identity opened: %+v %v", h, err)
	}
	seat, err := replicate.SeatOf(dir)
	if err != nil || h.Seat != seat {
		t.Fatalf("bound to %+v, the store's seat is %+v (%v)", h.Seat, seat, err)
	}
	b, err := os.ReadFile(p)
	if err != nil || !strings.Contains(string(b), `"version": 2`) {
		t.Fatalf("host.json not rewritten as version 2: %s %v", b, err)
	}
	if again, err := replicate.EnsureHost(dir, ""); err != nil || again.ID != h.ID || again.Seat != h.Seat {
		t.Fatalf("opened again: %+v %v", again, err)
	}
	bad := strings.Replace(string(b), `"inode": `, `"inode": 1`, 1)
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := replicate.EnsureHost(dir, ""); !errors.Is(err, replicate.ErrCorrupt) {
		t.Fatalf("a host.json whose seat was changed: %v, want ErrCorrupt", err)
	}
}

// TestShare7ListingNamesUnreadable: with one snapshot's manifest damaged
// on every store, the listing still shows every other snapshot and names
// the damaged one by its name id as lost; check counts it lost; prune,
// which deletes by the manifests, refuses (ErrCorrupt) and deletes
// nothing. A manifest damaged on all but one store is no loss.
func TestShare7ListingNamesUnreadable(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 16)
	mkDisk(t, a.host, "w", 16)
	writeBlocks(t, a.host, "v", 1, span(0, 8))
	writeBlocks(t, a.host, "w", 2, span(0, 8))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	before := listObjs(t, dirs[0], "snapshots")
	snapshot(t, a.host, "t1", "w")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	var victim string
	for _, nid := range listObjs(t, dirs[0], "snapshots") {
		if !slices.Contains(before, nid) {
			victim = nid
		}
	}
	damage := func(nid string, stores []string) {
		t.Helper()
		damageObj(t, stores, "snapshots", nid)
	}
	// On all but one store: still restorable, listed, not lost.
	damage(before[0], dirs[:2])
	rs, err := a.mgr.ListRemote(ctx, "r1")
	if err != nil || len(rs) != 2 || slices.ContainsFunc(rs, func(r replicate.RemoteSnapshot) bool { return r.State == replicate.StateLost }) {
		t.Fatalf("listing with s1's manifest damaged on 2 of 3 stores: %+v %v", rs, err)
	}
	damage(before[0], dirs[:2]) // undo
	damage(victim, dirs)
	rs, err = a.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatalf("listing with t1's manifest damaged on every store: %v", err)
	}
	var names []string
	for _, r := range rs {
		names = append(names, fmt.Sprintf("%s:%s:%s", r.Name, r.State, r.NameID))
	}
	if len(rs) != 2 || rs[0].State != replicate.StateLost || rs[0].NameID != victim || rs[1].Name != "s1" || rs[1].State != replicate.StateAvailable {
		t.Fatalf("listing: %v, want t1 named by its id %s as lost and s1 available", names, victim)
	}
	rep, err := a.mgr.Check(ctx, "r1", false, nil)
	if err != nil || rep.Verdict != "lost" || !slices.Contains(rep.Lost, "unreadable manifest "+victim) {
		t.Fatalf("check: verdict %q lost %v: %v", rep.Verdict, rep.Lost, err)
	}
	objs := listAll(t, dirs)
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true}); !errors.Is(err, replicate.ErrCorrupt) {
		t.Fatalf("prune with a manifest unreadable: %v, want ErrCorrupt", err)
	}
	if !slicesEqual(objs, listAll(t, dirs)) {
		t.Fatal("the refused prune changed the region")
	}
	if _, err := a.mgr.Restore(ctx, "r1", "s1", "v", "back", nil); err != nil {
		t.Fatalf("restore s1 beside the lost t1: %v", err)
	}
	// By host (every manifest is read to find it): the lost one does not
	// hide it; a name not found mentions the lost one.
	if _, err := a.mgr.RestoreFrom(ctx, "r1", "a", "s1", "v", "back2", nil); err != nil {
		t.Fatalf("restore s1 of host a beside the lost t1: %v", err)
	}
	if _, err := a.mgr.RestoreFrom(ctx, "r1", "a", "t1", "w", "back3", nil); !errors.Is(err, replicate.ErrNotFound) || !strings.Contains(err.Error(), victim) {
		t.Fatalf("restore of the lost t1: %v, want ErrNotFound naming the unreadable manifest %s", err, victim)
	}
	// Unlock and repair need only the markers: the lost manifest does not
	// stop them.
	if _, err := a.mgr.Unlock(ctx, "r1", false); err != nil {
		t.Fatalf("unlock with a manifest unreadable: %v", err)
	}
	rr, err := a.mgr.Repair(ctx, "r1", nil)
	t.Logf("repair: %+v %v", rr, err)
	if errors.Is(err, replicate.ErrCorrupt) {
		t.Fatalf("repair with a manifest unreadable: %v", err)
	}
}

// FuzzDecodeHost: host.json of any bytes decodes or fails cleanly; what
// decodes encodes back to the same identity.
func FuzzDecodeHost(f *testing.F) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var id, prev format.HostID
	id[0], prev[15] = 1, 2
	f.Add(replicate.EncodeHost(replicate.Host{ID: id, Name: "h", Created: created}))
	f.Add(replicate.EncodeHost(replicate.Host{ID: id, Name: "h", Created: created, Seat: replicate.Seat{MachineID: "ab", Inode: 7, BirthNs: 9}, Previous: []format.HostID{prev}}))
	sum := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%s", 1, id.String(), "old", created.Format(time.RFC3339Nano)))
	f.Add(fmt.Appendf(nil, `{"version": 1, "id": %q, "name": "old", "created": %q, "checksum": %q}`, id.String(), created.Format(time.RFC3339Nano), hex.EncodeToString(sum[:])))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := replicate.DecodeHost(b)
		if err != nil {
			if !errors.Is(err, replicate.ErrCorrupt) && !errors.Is(err, format.ErrUnsupportedVersion) {
				t.Fatalf("error neither corrupt nor unsupported: %v", err)
			}
			return
		}
		h2, err := replicate.DecodeHost(replicate.EncodeHost(h))
		if err != nil || h2.ID != h.ID || h2.Name != h.Name || !h2.Created.Equal(h.Created) || h2.Seat != h.Seat || !slices.Equal(h2.Previous, h.Previous) {
			t.Fatalf("round trip: %+v -> %+v %v", h, h2, err)
		}
	})
}

// TestShare7StoreTimes: file:// and S3 stores (the latter through the
// retry wrapper, as regions open them) report an object's store time of
// its last put (store.ModTime), which lock liveness and pack ages rely
// on; a missing object is ErrNotFound.
func TestShare7StoreTimes(t *testing.T) {
	ctx := context.Background()
	endpoint, access, secret := s3test.Start(t)
	dirs, urls := storeDirs(t, 1)
	_ = dirs
	for _, u := range []string{urls[0], "s3://share7/times"} {
		s, err := store.Open(ctx, u, store.Options{Endpoint: endpoint, PathStyle: true, Insecure: true, AccessKey: access, SecretKey: secret})
		if err != nil {
			t.Fatal(err)
		}
		s = store.Wrap(s, store.WrapOptions{Retry: store.DefaultRetry()})
		before := time.Now()
		if err := s.Put(ctx, "locks/x", []byte("1")); err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		mt, err := store.ModTime(ctx, s, "locks/x")
		// S3's LastModified has 1 s resolution.
		if err != nil || mt.Before(before.Add(-1500*time.Millisecond)) || mt.After(after.Add(1500*time.Millisecond)) {
			t.Errorf("%s: ModTime %v %v, put between %v and %v", u, mt, err, before, after)
		}
		if _, err := store.ModTime(ctx, s, "locks/none"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: ModTime of a missing object: %v, want ErrNotFound", u, err)
		}
		s.Close()
	}
}
