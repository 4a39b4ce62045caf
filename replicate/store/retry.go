package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"syscall"
	"time"
)

// RetryOptions configure the retry wrapper. Zero fields take defaults.
type RetryOptions struct {
	// Attempts is the total number of tries, first included (default 5).
	Attempts int
	// InitialDelay is the backoff before the second try (default 100ms);
	// it doubles for every further try, up to MaxDelay (default 5s).
	InitialDelay, MaxDelay time.Duration
	// Rand draws the jitter; nil uses the global source. Tests pass a
	// seeded one.
	Rand *rand.Rand
}

func (o RetryOptions) withDefaults() RetryOptions {
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.InitialDelay <= 0 {
		o.InitialDelay = 100 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	if o.MaxDelay < o.InitialDelay {
		o.MaxDelay = o.InitialDelay
	}
	return o
}

// backoff is the wait before try n+1 (n >= 1): InitialDelay*2^(n-1), capped
// at MaxDelay, with "equal jitter": a uniform draw from [d/2, d].
func (o RetryOptions) backoff(n int) time.Duration {
	d := o.InitialDelay
	for i := 1; i < n && d < o.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, o.MaxDelay)
	half := int64(d / 2)
	var j int64
	if o.Rand != nil {
		j = o.Rand.Int64N(half + 1)
	} else {
		j = rand.Int64N(half + 1)
	}
	return time.Duration(half + j)
}

// Permanent reports whether retrying err cannot help: a missing object, a
// bad name or URL, a short read, a cancelled or expired context, a closed
// store, or a file:// store on a read-only file system (EROFS: retried,
// every write to it took five attempts and a second to fail).
func Permanent(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidName) ||
		errors.Is(err, ErrInvalidURL) || errors.Is(err, ErrShortRead) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errClosed) || errors.Is(err, syscall.EROFS)
}

// retryStore retries every method but Location and Close.
type retryStore struct {
	inner Store
	o     RetryOptions
	log   *slog.Logger
}

// do runs op until it succeeds, fails permanently, runs out of attempts,
// or ctx ends while waiting.
func (r *retryStore) do(ctx context.Context, method, name string, op func() error) error {
	var err error
	for n := 1; ; n++ {
		err = op()
		if err == nil || Permanent(err) || isCallback(err) || n >= r.o.Attempts {
			break
		}
		wait := r.o.backoff(n)
		r.log.Warn("store call failed, retrying", "method", method, "name", name,
			"location", r.inner.Location(), "attempt", n, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("store: %s %s: giving up while waiting to retry: %w (last error: %w)", method, name, ctx.Err(), err)
		case <-t.C:
		}
	}
	if err != nil && !Permanent(err) && !isCallback(err) {
		return fmt.Errorf("store: %s %s: %d attempts failed: %w", method, name, r.o.Attempts, err)
	}
	return err
}

func (r *retryStore) Put(ctx context.Context, name string, data []byte) error {
	return r.do(ctx, "put", name, func() error { return r.inner.Put(ctx, name, data) })
}

func (r *retryStore) Get(ctx context.Context, name string, off, length int64) ([]byte, error) {
	var data []byte
	err := r.do(ctx, "get", name, func() error {
		var err error
		data, err = r.inner.Get(ctx, name, off, length)
		return err
	})
	return data, err
}

// ReadInto implements ReaderInto (through the inner store's, or its Get).
func (r *retryStore) ReadInto(ctx context.Context, name string, off int64, bufs ...[]byte) (int64, error) {
	var size int64
	err := r.do(ctx, "get", name, func() error {
		var err error
		size, err = ReadInto(ctx, r.inner, name, off, bufs...)
		return err
	})
	return size, err
}

func (r *retryStore) Stat(ctx context.Context, name string) (int64, error) {
	var size int64
	err := r.do(ctx, "stat", name, func() error {
		var err error
		size, err = r.inner.Stat(ctx, name)
		return err
	})
	return size, err
}

// callbackError marks an error returned by List's fn, which is the
// caller's and is never retried.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

func isCallback(err error) bool {
	_, ok := errors.AsType[*callbackError](err)
	return ok
}

// List retries a failed listing from where it stopped: names come in
// lexical order, so names up to the last one delivered are skipped and fn
// still sees each object once.
func (r *retryStore) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	last, started := "", false
	err := r.do(ctx, "list", prefix, func() error {
		return r.inner.List(ctx, prefix, func(name string, size int64) error {
			if started && name <= last {
				return nil
			}
			if err := fn(name, size); err != nil {
				return &callbackError{err}
			}
			last, started = name, true
			return nil
		})
	})
	// fn's error is returned as fn returned it, not retried.
	if cb, ok := errors.AsType[*callbackError](err); ok {
		return cb.err
	}
	return err
}

func (r *retryStore) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete", name, func() error { return r.inner.Delete(ctx, name) })
}

func (r *retryStore) Location() string { return r.inner.Location() }
func (r *retryStore) Close() error     { return r.inner.Close() }
