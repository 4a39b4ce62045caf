package store

import (
	"log/slog"
	"time"
)

// WrapOptions choose the wrappers Wrap stacks on a store. A nil field
// leaves its wrapper out.
type WrapOptions struct {
	// Retry retries failed calls with exponential backoff and jitter.
	Retry *RetryOptions
	// Faults injects failures below the retry wrapper, as if the backend
	// failed, so tests see what retries do with them.
	Faults *Faults
	// Logger receives one message per retried failure; nil discards.
	Logger *slog.Logger
}

// Wrap stacks the wrappers that w asks for on s, innermost first:
// faults (closest to the backend), then retry. Every wrapper implements the
// whole Store interface and keeps its promises.
func Wrap(s Store, w WrapOptions) Store {
	if w.Faults != nil {
		s = &faultyStore{inner: s, f: w.Faults}
	}
	if w.Retry != nil {
		log := w.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		s = &retryStore{inner: s, o: w.Retry.withDefaults(), log: log}
	}
	return s
}

// DefaultRetry is a retry policy for real backends: 5 attempts, 100ms
// doubling to at most 5s.
func DefaultRetry() *RetryOptions {
	return &RetryOptions{Attempts: 5, InitialDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}
}
