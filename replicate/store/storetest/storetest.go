// Package storetest is the conformance suite of replicate/store: every
// promise of store.Store, checked against any backend. A backend's test
// supplies only a factory:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newEmptyStore(t) })
//	}
//
// newStore must return an empty store each call; the suite closes it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/snapfs/snapfs/replicate/store"
)

// Run runs the conformance suite, one subtest per promise.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGet", testPutGet},
		{"EmptyObject", testEmptyObject},
		{"Replace", testReplace},
		{"AtomicReplace", testAtomicReplace},
		{"RangedGet", testRangedGet},
		{"ReadInto", testReadInto},
		{"Stat", testStat},
		{"Missing", testMissing},
		{"ListOrderAndPrefix", testList},
		{"ListStopsOnError", testListStops},
		{"Delete", testDelete},
		{"InvalidNames", testInvalidNames},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Large", testLarge},
		{"Location", testLocation},
		{"Cancelled", testCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, s store.Store, name string, b []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, b); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func get(t *testing.T, s store.Store, name string, off, length int64) []byte {
	t.Helper()
	b, err := s.Get(t.Context(), name, off, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", name, off, length, err)
	}
	return b
}

func testPutGet(t *testing.T, s store.Store) {
	for i, name := range []string{"a", "dir/b", "dir/sub/c.pack", "x_y-z.1", "A/B/C/D/E"} {
		want := data(uint64(i), 100+i)
		put(t, s, name, want)
		if got := get(t, s, name, 0, -1); !bytes.Equal(got, want) {
			t.Fatalf("Get(%q) returned other bytes", name)
		}
	}
}

func testEmptyObject(t *testing.T, s store.Store) {
	put(t, s, "empty", nil)
	if got := get(t, s, "empty", 0, -1); len(got) != 0 {
		t.Fatalf("got %d bytes", len(got))
	}
	if size, err := s.Stat(t.Context(), "empty"); err != nil || size != 0 {
		t.Fatalf("Stat = %d, %v", size, err)
	}
}

func testReplace(t *testing.T, s store.Store) {
	put(t, s, "obj", data(1, 1000))
	put(t, s, "obj", data(2, 10)) // shorter: no old tail may remain
	if got := get(t, s, "obj", 0, -1); !bytes.Equal(got, data(2, 10)) {
		t.Fatalf("after replace got %d bytes", len(got))
	}
	put(t, s, "obj", data(2, 10)) // idempotent
	if size, err := s.Stat(t.Context(), "obj"); err != nil || size != 10 {
		t.Fatalf("Stat = %d, %v", size, err)
	}
	n := 0
	if err := s.List(t.Context(), "", func(string, int64) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("List after replace: %d objects, %v", n, err)
	}
}

// testAtomicReplace replaces an object while readers read it: each read
// must see one whole version, never a mix or a part.
func testAtomicReplace(t *testing.T, s store.Store) {
	versions := [][]byte{data(10, 256<<10), data(11, 200<<10), data(12, 300<<10)}
	put(t, s, "atomic", versions[0])
	ctx := t.Context()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.Get(ctx, "atomic", 0, -1)
				if err != nil {
					errc <- fmt.Errorf("Get during replace: %w", err)
					return
				}
				if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) }) {
					errc <- fmt.Errorf("Get during replace saw a partial or mixed object of %d bytes", len(got))
					return
				}
			}
		})
	}
	for i := range 12 {
		if err := s.Put(ctx, "atomic", versions[i%len(versions)]); err != nil {
			errc <- err
			break
		}
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func testRangedGet(t *testing.T, s store.Store) {
	const size = 1000
	want := data(3, size)
	put(t, s, "r", want)
	for _, c := range []struct{ off, length int64 }{
		{0, -1}, {0, size}, {0, 1}, {1, 1}, {999, 1}, {500, 500}, {500, -1},
		{123, 456}, {size, -1}, {size, 0}, {0, 0}, {999, -1},
	} {
		got := get(t, s, "r", c.off, c.length)
		end := int64(size)
		if c.length >= 0 {
			end = c.off + c.length
		}
		if !bytes.Equal(got, want[c.off:end]) {
			t.Errorf("Get(r, %d, %d): %d bytes, wrong content", c.off, c.length, len(got))
		}
	}
	for _, c := range []struct{ off, length int64 }{
		{0, size + 1}, {999, 2}, {size, 1}, {size + 1, -1}, {size + 1, 0}, {5000, 10}, {-1, 10},
	} {
		got, err := s.Get(t.Context(), "r", c.off, c.length)
		if !errors.Is(err, store.ErrShortRead) {
			t.Errorf("Get(r, %d, %d) = %d bytes, %v; want ErrShortRead", c.off, c.length, len(got), err)
		}
	}
}

// testReadInto: store.ReadInto (the store's ReaderInto, or Get) fills
// the buffers in order from the offset, returns the object's size, and
// refuses what lies outside the object as Get does.
func testReadInto(t *testing.T, s store.Store) {
	const size = 1000
	want := data(4, size)
	put(t, s, "r", want)
	for _, c := range []struct{ off, a, b int64 }{
		{0, 64, 936}, {0, 1000, 0}, {10, 64, 100}, {999, 1, 0}, {1000, 0, 0}, {0, 0, 0},
	} {
		a, b := make([]byte, c.a), make([]byte, c.b)
		n, err := store.ReadInto(t.Context(), s, "r", c.off, a, b)
		if err != nil || n != size {
			t.Errorf("ReadInto(r, %d, %d+%d bytes) = %d, %v; want %d", c.off, c.a, c.b, n, err, size)
			continue
		}
		if !bytes.Equal(append(a, b...), want[c.off:c.off+c.a+c.b]) {
			t.Errorf("ReadInto(r, %d, %d+%d bytes): wrong content", c.off, c.a, c.b)
		}
	}
	for _, c := range []struct{ off, a, b int64 }{{0, 1000, 1}, {999, 1, 1}, {1001, 0, 0}, {-1, 1, 0}} {
		if _, err := store.ReadInto(t.Context(), s, "r", c.off, make([]byte, c.a), make([]byte, c.b)); !errors.Is(err, store.ErrShortRead) {
			t.Errorf("ReadInto(r, %d, %d+%d bytes) = %v; want ErrShortRead", c.off, c.a, c.b, err)
		}
	}
	if _, err := store.ReadInto(t.Context(), s, "missing", 0, make([]byte, 1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadInto(missing) = %v; want ErrNotFound", err)
	}
}

func testStat(t *testing.T, s store.Store) {
	for i, n := range []int{1, 7, 4096, 100000} {
		name := fmt.Sprintf("stat/%d", i)
		put(t, s, name, data(uint64(n), n))
		if size, err := s.Stat(t.Context(), name); err != nil || size != int64(n) {
			t.Fatalf("Stat(%q) = %d, %v; want %d", name, size, err, n)
		}
	}
}

func testMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, "present/x", []byte("x"))
	for _, name := range []string{"nothing", "present/y", "present", "present/x/deeper", "other/dir/z"} {
		if _, err := s.Get(ctx, name, 0, -1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", name, err)
		}
		if _, err := s.Get(ctx, name, 1, 1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ranged Get(%q): %v, want ErrNotFound", name, err)
		}
		if _, err := s.Get(ctx, name, 0, 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("empty Get(%q): %v, want ErrNotFound", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Stat(%q): %v, want ErrNotFound", name, err)
		}
	}
}

func testList(t *testing.T, s store.Store) {
	// Names chosen so that a directory walk's order differs from the
	// lexical order: '-' < '.' < '/' < '0' < 'A' < '_' < 'a'.
	names := []string{
		"a", "a-b", "a.c", "a0", "aA", "a_", "ab", "b/1", "b/2/x", "b-c",
		"c/d/e/f", "c/d/e-g", "c/d-h", "p/a/0001", "p/a/0002", "p/a/0010", "p/ab", "z",
	}
	shuffled := slices.Clone(names)
	rand.New(rand.NewPCG(4, 5)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i, n := range shuffled {
		put(t, s, n, data(uint64(i), i))
	}
	sizes := map[string]int64{}
	for i, n := range shuffled {
		sizes[n] = int64(i)
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	for _, prefix := range []string{"", "a", "a/", "b", "b/", "b/2", "c/d/e", "c/d/", "p/a/", "p/a", "p/a/00", "q", "zz", "p/a/0002"} {
		var got []string
		err := s.List(t.Context(), prefix, func(name string, size int64) error {
			if size != sizes[name] {
				t.Errorf("List(%q): %s has size %d, want %d", prefix, name, size, sizes[name])
			}
			got = append(got, name)
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		var want []string
		for _, n := range sorted {
			if strings.HasPrefix(n, prefix) {
				want = append(want, n)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q\nwant %q", prefix, got, want)
		}
	}
	if err := s.List(t.Context(), "/a", func(string, int64) error { return nil }); !errors.Is(err, store.ErrInvalidName) {
		t.Errorf("List(\"/a\"): %v, want ErrInvalidName", err)
	}
}

func testListStops(t *testing.T, s store.Store) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("l/%d", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	n := 0
	err := s.List(t.Context(), "l/", func(string, int64) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("List with failing fn: %v after %d calls", err, n)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, "d/1", []byte("one"))
	put(t, s, "d/2", []byte("two"))
	for range 2 { // the second time the object is missing: still no error
		if err := s.Delete(ctx, "d/1"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if err := s.Delete(ctx, "never/existed"); err != nil {
		t.Fatalf("Delete of a missing object: %v", err)
	}
	if _, err := s.Stat(ctx, "d/1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stat after delete: %v", err)
	}
	var got []string
	if err := s.List(ctx, "", func(n string, _ int64) error { got = append(got, n); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"d/2"}) {
		t.Fatalf("List after delete = %q", got)
	}
	put(t, s, "d/1", []byte("again"))
	if got := get(t, s, "d/1", 0, -1); string(got) != "again" {
		t.Fatalf("Put after delete: %q", got)
	}
}

func testInvalidNames(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, name := range []string{
		"", "/", "/abs", "..", "../up", "a/../b", "a/..", ".", "./a", "a/./b", "a//b", "a/",
		"sp ace", "back\\slash", "star*", "q?", "uni\u00e9", "nul\x00", "tilde~", strings.Repeat("a", store.MaxNameLen+1),
	} {
		if err := s.Put(ctx, name, []byte("x")); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Put(%q): %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Get(ctx, name, 0, -1); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Get(%q): %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Stat(%q): %v, want ErrInvalidName", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("Delete(%q): %v, want ErrInvalidName", name, err)
		}
	}
	n := 0
	if err := s.List(ctx, "", func(string, int64) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("invalid names left %d objects (%v)", n, err)
	}
	for _, name := range []string{"...", "a..b", ".hidden", "a/.b", "-", "_"} {
		put(t, s, name, []byte(name))
	}
}

func testConcurrentPuts(t *testing.T, s store.Store) {
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("conc/%02d/obj", i%4) // shared directories
			name = fmt.Sprintf("%s-%02d", name, i)
			errs[i] = s.Put(t.Context(), name, data(uint64(i), 1000+i))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	count := 0
	err := s.List(t.Context(), "conc/", func(name string, size int64) error {
		var d, i int
		if _, err := fmt.Sscanf(name, "conc/%02d/obj-%02d", &d, &i); err != nil {
			return fmt.Errorf("unexpected name %q", name)
		}
		if got := get(t, s, name, 0, -1); !bytes.Equal(got, data(uint64(i), 1000+i)) {
			return fmt.Errorf("%s: wrong content", name)
		}
		count++
		return nil
	})
	if err != nil || count != n {
		t.Fatalf("List: %d objects, %v", count, err)
	}
}

func testLarge(t *testing.T, s store.Store) {
	const size = 20 << 20
	want := data(99, size)
	put(t, s, "large/pack", want)
	if sz, err := s.Stat(t.Context(), "large/pack"); err != nil || sz != size {
		t.Fatalf("Stat = %d, %v", sz, err)
	}
	if got := get(t, s, "large/pack", 0, -1); !bytes.Equal(got, want) {
		t.Fatal("large object read back differs")
	}
	off, length := int64(size/2-12345), int64(3<<20)
	if got := get(t, s, "large/pack", off, length); !bytes.Equal(got, want[off:off+length]) {
		t.Fatal("ranged read of large object differs")
	}
	if got := get(t, s, "large/pack", size-10, -1); !bytes.Equal(got, want[size-10:]) {
		t.Fatal("tail read of large object differs")
	}
}

func testLocation(t *testing.T, s store.Store) {
	loc := s.Location()
	if !strings.Contains(loc, "://") {
		t.Fatalf("Location %q is not a URL", loc)
	}
	if strings.Contains(loc, "@") {
		t.Fatalf("Location %q may carry credentials", loc)
	}
}

func testCancelled(t *testing.T, s store.Store) {
	put(t, s, "c", []byte("c"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(ctx, "c2", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with cancelled ctx: %v", err)
	}
	if _, err := s.Get(ctx, "c", 0, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with cancelled ctx: %v", err)
	}
	if err := s.List(ctx, "", func(string, int64) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List with cancelled ctx: %v", err)
	}
}
