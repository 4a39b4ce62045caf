package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
	"github.com/snapfs/snapfs/replicate/store/storetest"
)

func openLocal(t *testing.T) store.Store {
	s, err := store.Open(t.Context(), "file://"+t.TempDir()+"/store", store.Options{})
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
