package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store"
)

func fastRetry(attempts int) *store.RetryOptions {
	return &store.RetryOptions{Attempts: attempts, InitialDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond,
		Rand: rand.New(rand.NewPCG(1, 2))}
}

func TestRetryRidesOverTransientFaults(t *testing.T) {
	f := store.NewFaults()
	s := store.Wrap(openLocal(t), store.WrapOptions{Faults: f, Retry: fastRetry(3)})
	ctx := t.Context()
	f.FailNth(store.MethodPut, 1, nil)
	f.FailNth(store.MethodPut, 2, nil)
	if err := s.Put(ctx, "x", []byte("hello")); err != nil {
		t.Fatalf("Put with 2 transient faults and 3 attempts: %v", err)
	}
	if got := f.Calls(store.MethodPut); got != 3 {
		t.Fatalf("Put called %d times, want 3", got)
	}
	f.FailNth(store.MethodGet, 1, nil)
	if b, err := s.Get(ctx, "x", 0, -1); err != nil || string(b) != "hello" {
		t.Fatalf("Get: %q, %v", b, err)
	}
	f.FailNth(store.MethodStat, 1, nil)
	f.FailNth(store.MethodDelete, 1, nil)
	if _, err := s.Stat(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
}

func TestRetryGivesUp(t *testing.T) {
	f := store.NewFaults()
	s := store.Wrap(openLocal(t), store.WrapOptions{Faults: f, Retry: fastRetry(4)})
	f.SetDown(true)
	err := s.Put(t.Context(), "x", nil)
	if !errors.Is(err, store.ErrInjected) || f.Calls(store.MethodPut) != 4 {
		t.Fatalf("down store: %v after %d calls", err, f.Calls(store.MethodPut))
	}
	f.SetDown(false)
	if err := s.Put(t.Context(), "x", nil); err != nil {
		t.Fatalf("store back up: %v", err)
	}
}

func TestRetryNotForPermanentErrors(t *testing.T) {
	f := store.NewFaults()
	s := store.Wrap(openLocal(t), store.WrapOptions{Faults: f, Retry: fastRetry(5)})
	if _, err := s.Get(t.Context(), "missing", 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), "../bad"); !errors.Is(err, store.ErrInvalidName) {
		t.Fatal(err)
	}
	if got := f.Calls(store.MethodGet) + f.Calls(store.MethodStat); got != 2 {
		t.Fatalf("permanent errors were retried: %d calls", got)
	}
}

func TestRetryHonoursContext(t *testing.T) {
	f := store.NewFaults()
	f.SetDown(true)
	s := store.Wrap(openLocal(t), store.WrapOptions{Faults: f,
		Retry: &store.RetryOptions{Attempts: 100, InitialDelay: time.Hour}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Put(ctx, "x", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrInjected) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
}

// flakyList fails List after delivering some names, once.
type flakyList struct {
	store.Store
	failAfter int
}

func (s *flakyList) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	n := 0
	return s.Store.List(ctx, prefix, func(name string, size int64) error {
		if s.failAfter > 0 && n == s.failAfter {
			s.failAfter = 0
			return errors.New("connection reset")
		}
		n++
		return fn(name, size)
	})
}

func TestRetryListResumes(t *testing.T) {
	base := openLocal(t)
	var want []string
	for i := range 10 {
		name := fmt.Sprintf("o/%02d", i)
		want = append(want, name)
		if err := base.Put(t.Context(), name, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := store.Wrap(&flakyList{Store: base, failAfter: 4}, store.WrapOptions{Retry: fastRetry(3)})
	var got []string
	if err := s.List(t.Context(), "o/", func(n string, _ int64) error { got = append(got, n); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("resumed List = %q", got)
	}
	// fn's own error is returned unchanged and not retried.
	stop := errors.New("stop")
	calls := 0
	err := s.List(t.Context(), "o/", func(string, int64) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("List with failing fn: %v, %d calls", err, calls)
	}
}

func TestFaultsCorruptGets(t *testing.T) {
	f := store.NewFaults()
	s := store.Wrap(openLocal(t), store.WrapOptions{Faults: f})
	ctx := t.Context()
	if err := s.Put(ctx, "a", []byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	f.CorruptGets(func(name string) bool { return name == "a" })
	b, err := s.Get(ctx, "a", 0, -1)
	if err != nil || string(b) == "abcdef" || len(b) != 6 {
		t.Fatalf("corrupted Get: %q, %v", b, err)
	}
	f.CorruptGets(nil)
	if b, _ := s.Get(ctx, "a", 0, -1); string(b) != "abcdef" {
		t.Fatalf("stored object changed: %q", b)
	}
	f.FailNth(store.MethodList, 1, errors.New("boom"))
	if err := s.List(ctx, "", func(string, int64) error { return nil }); err == nil || err.Error() != "boom" {
		t.Fatalf("FailNth with a chosen error: %v", err)
	}
}
