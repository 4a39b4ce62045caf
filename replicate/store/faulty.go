package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Method names a Store method for fault injection.
type Method string

// The Store methods faults can target.
const (
	MethodPut    Method = "put"
	MethodGet    Method = "get"
	MethodStat   Method = "stat"
	MethodList   Method = "list"
	MethodDelete Method = "delete"
)

// ErrInjected is the error of an injected failure (and of a store that is
// down), unless the test chose another.
var ErrInjected = errors.New("store: injected fault")

// Faults is a controllable set of failures for the fault wrapper (see
// WrapOptions.Faults), shared between a test and the wrapped store. Calls
// are counted per method from 1, from the moment the wrapper exists. All
// methods are safe for concurrent use; the zero value is not usable, use
// NewFaults.
type Faults struct {
	mu      sync.Mutex
	calls   map[Method]int
	failAt  map[Method]map[int]error // method -> call number -> error
	down    bool
	corrupt func(name string) bool
	delay   func(m Method, name string) time.Duration
	match   func(m Method, name string) error
	rnd     *rand.Rand
	random  RandomFaults
}

// RandomFaults inject faults at random (see Faults.SetRandom).
type RandomFaults struct {
	// MaxDelay: every call first sleeps a random time in [0, MaxDelay).
	MaxDelay time.Duration
	// ErrRate: the share of calls that fail before doing anything.
	ErrRate float64
	// LostAckRate: the share of Puts and Deletes that take effect and
	// then fail (the acknowledgement is lost), as a timeout after the
	// service applied the request looks to a client.
	LostAckRate float64
}

// SetRandom injects random delays, errors and lost acknowledgements,
// seeded (the zero RandomFaults stops them).
func (f *Faults) SetRandom(seed uint64, r RandomFaults) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f.random = r
}

// FailMatching makes every call for which fn returns an error fail with it
// (nil: stop).
func (f *Faults) FailMatching(fn func(m Method, name string) error) {
	f.mu.Lock()
	f.match = fn
	f.mu.Unlock()
}

// DelayMatching makes every call sleep for what fn returns for it (nil:
// stop). Tests use it to widen a race window at one object.
func (f *Faults) DelayMatching(fn func(m Method, name string) time.Duration) {
	f.mu.Lock()
	f.delay = fn
	f.mu.Unlock()
}

// NewFaults returns a Faults that injects nothing yet.
func NewFaults() *Faults {
	return &Faults{calls: map[Method]int{}, failAt: map[Method]map[int]error{}}
}

// FailNth makes the n-th call (1-based) of method m fail with err, or with
// ErrInjected if err is nil. Several calls can be set to fail.
func (f *Faults) FailNth(m Method, n int, err error) {
	if err == nil {
		err = fmt.Errorf("%w: %s call %d", ErrInjected, m, n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt[m] == nil {
		f.failAt[m] = map[int]error{}
	}
	f.failAt[m][n] = err
}

// SetDown makes every call of every method fail (true) or work (false), as
// if the store were unreachable.
func (f *Faults) SetDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// CorruptGets flips one byte of the data Get returns for every name that
// match reports true for (nil: stop corrupting). The stored object is not
// changed: this models corruption on the wire or a lying disk.
func (f *Faults) CorruptGets(match func(name string) bool) {
	f.mu.Lock()
	f.corrupt = match
	f.mu.Unlock()
}

// Calls returns how many calls of m the wrapper has seen.
func (f *Faults) Calls(m Method) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[m]
}

// enter counts a call, sleeps any injected delay, and returns the error to
// inject before the call, if any, and whether to lose its acknowledgement.
func (f *Faults) enter(ctx context.Context, m Method, name string) (lost bool, err error) {
	f.mu.Lock()
	f.calls[m]++
	var d time.Duration
	if f.delay != nil {
		d = f.delay(m, name)
	}
	if f.rnd != nil {
		if f.random.MaxDelay > 0 {
			d += time.Duration(f.rnd.Int64N(int64(f.random.MaxDelay)))
		}
		if f.rnd.Float64() < f.random.ErrRate {
			err = fmt.Errorf("%w: random failure of %s %s", ErrInjected, m, name)
		} else if (m == MethodPut || m == MethodDelete) && f.rnd.Float64() < f.random.LostAckRate {
			lost = true
		}
	}
	if f.down {
		err = fmt.Errorf("%w: store down (%s)", ErrInjected, m)
	} else if e := f.failAt[m][f.calls[m]]; e != nil {
		err = e
	} else if f.match != nil {
		if e := f.match(m, name); e != nil {
			err = e
		}
	}
	f.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		}
	}
	return lost, err
}

func lostAck(m Method, name string, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s %s applied, acknowledgement lost", ErrInjected, m, name)
}

func (f *Faults) corrupts(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.corrupt != nil && f.corrupt(name)
}

type faultyStore struct {
	inner Store
	f     *Faults
}

func (s *faultyStore) Put(ctx context.Context, name string, data []byte) error {
	lost, err := s.f.enter(ctx, MethodPut, name)
	if err != nil {
		return err
	}
	err = s.inner.Put(ctx, name, data)
	if lost {
		return lostAck(MethodPut, name, err)
	}
	return err
}

func (s *faultyStore) Get(ctx context.Context, name string, off, length int64) ([]byte, error) {
	if _, err := s.f.enter(ctx, MethodGet, name); err != nil {
		return nil, err
	}
	data, err := s.inner.Get(ctx, name, off, length)
	if err == nil && len(data) > 0 && s.f.corrupts(name) {
		data = slices.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	return data, err
}

func (s *faultyStore) Stat(ctx context.Context, name string) (int64, error) {
	if _, err := s.f.enter(ctx, MethodStat, name); err != nil {
		return 0, err
	}
	return s.inner.Stat(ctx, name)
}

func (s *faultyStore) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	if _, err := s.f.enter(ctx, MethodList, prefix); err != nil {
		return err
	}
	return s.inner.List(ctx, prefix, fn)
}

func (s *faultyStore) Delete(ctx context.Context, name string) error {
	lost, err := s.f.enter(ctx, MethodDelete, name)
	if err != nil {
		return err
	}
	err = s.inner.Delete(ctx, name)
	if lost {
		return lostAck(MethodDelete, name, err)
	}
	return err
}

func (s *faultyStore) Location() string { return s.inner.Location() }
func (s *faultyStore) Close() error     { return s.inner.Close() }
