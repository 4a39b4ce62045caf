package store_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
	"github.com/snapfs/snapfs/replicate/store/storetest"
)

func openLocal(t *testing.T) store.Store {
	s, err := store.Open(t.Context(), "file://"+t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLocalConformance(t *testing.T) {
	storetest.Run(t, openLocal)
}

func TestLocalRetryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.Wrap(openLocal(t), store.WrapOptions{
			Retry:  &store.RetryOptions{Attempts: 3, InitialDelay: time.Millisecond},
			Faults: store.NewFaults(),
		})
	})
}

func TestS3Conformance(t *testing.T) {
	endpoint, access, secret := s3test.Start(t)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++ // a fresh prefix per subtest, in a shared bucket
		s, err := store.Open(t.Context(), fmt.Sprintf("s3://conformance/t%02d", n), store.Options{
			Endpoint:  endpoint,
			AccessKey: access,
			SecretKey: secret,
			PathStyle: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return store.Wrap(s, store.WrapOptions{Retry: &store.RetryOptions{Attempts: 3, InitialDelay: 10 * time.Millisecond}})
	})
}

// Issue 9 finding 3: a missing store directory is never created by Open,
// and CreateLocal makes one only inside a mounted file system other than
// / (here: none is known to be, unless the temporary directory is one).
func TestLocalMissingNotCreated(t *testing.T) {
	dir := t.TempDir() + "/nas/snapfs"
	if _, err := store.Open(t.Context(), "file://"+dir, store.Options{}); !errors.Is(err, store.ErrMissing) {
		t.Fatalf("open of a missing directory: %v, want ErrMissing", err)
	}
	if err := store.CreateLocal(dir); !errors.Is(err, store.ErrMissing) {
		t.Fatalf("create with a missing parent: %v, want ErrMissing", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory was made: %v", err)
	}
	// /dev/shm is a tmpfs mount: a directory in it may be created.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "store-test-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(shm)
		if err := store.CreateLocal(shm + "/s"); err != nil {
			t.Fatalf("create inside a mounted tmpfs: %v", err)
		}
		// /tmp/x/y with /tmp on the root file system is refused.
	}
}
