package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

// enter counts a call and returns the error to inject, if any.
func (f *Faults) enter(m Method) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[m]++
	if f.down {
		return fmt.Errorf("%w: store down (%s)", ErrInjected, m)
	}
	return f.failAt[m][f.calls[m]]
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
	if err := s.f.enter(MethodPut); err != nil {
		return err
	}
	return s.inner.Put(ctx, name, data)
}

func (s *faultyStore) Get(ctx context.Context, name string, off, length int64) ([]byte, error) {
	if err := s.f.enter(MethodGet); err != nil {
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
	if err := s.f.enter(MethodStat); err != nil {
		return 0, err
	}
	return s.inner.Stat(ctx, name)
}

func (s *faultyStore) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	if err := s.f.enter(MethodList); err != nil {
		return err
	}
	return s.inner.List(ctx, prefix, fn)
}

func (s *faultyStore) Delete(ctx context.Context, name string) error {
	if err := s.f.enter(MethodDelete); err != nil {
		return err
	}
	return s.inner.Delete(ctx, name)
}

func (s *faultyStore) Location() string { return s.inner.Location() }
func (s *faultyStore) Close() error     { return s.inner.Close() }
