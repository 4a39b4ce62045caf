package replicate

import (
	"strings"
	"sync"
)

// forEach runs fn(i) for every i in [0, n) concurrently and returns each
// call's error at its index.
func forEach(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errs
}

// firstErr returns the first non-nil error.
func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// joinErrs is errors.Join on one line: messages are printed whole by the
// CLI, which shows only the first line of an error ("; " separates them).
// nil when every error is nil.
func joinErrs(errs ...error) error {
	var out multiErr
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

type multiErr []error

func (m multiErr) Error() string {
	s := make([]string, len(m))
	for i, e := range m {
		s[i] = strings.ReplaceAll(e.Error(), "\n", "; ")
	}
	return strings.Join(s, "; ")
}

func (m multiErr) Unwrap() []error { return m }
