package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// Issue 9 finding 5: an S3 store opened without credentials says where
// they must be set (the environment of the process that opens the store:
// the daemon's when one runs), not only "Access Denied".
func TestS3NoCredentialsSaysWhere(t *testing.T) {
	endpoint, _, _ := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	s, err := store.Open(t.Context(), "s3://nocreds/p", store.Options{Endpoint: endpoint, PathStyle: true})
	if err == nil {
		s.Close()
		t.Fatal("opened an S3 store without credentials")
	}
	if !strings.Contains(err.Error(), "daemon's environment") || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("error does not say where credentials go: %v", err)
	}
}

// Issue 9 finding 3: outside region add, a missing bucket is not created
// (nothing is written to a store without the region's marker).
func TestS3MissingBucketNotCreated(t *testing.T) {
	endpoint, access, secret := s3test.Start(t)
	o := store.Options{Endpoint: endpoint, AccessKey: access, SecretKey: secret, PathStyle: true, NoCreateBucket: true}
	if _, err := store.Open(t.Context(), "s3://gone/p", o); !errors.Is(err, store.ErrMissing) {
		t.Fatalf("open of a missing bucket: %v", err)
	}
	o.NoCreateBucket = false
	s, err := store.Open(t.Context(), "s3://gone/p", o)
	if err != nil {
		t.Fatalf("open creating the bucket: %v", err)
	}
	s.Close()
	o.NoCreateBucket = true
	s, err = store.Open(t.Context(), "s3://gone/p", o)
	if err != nil {
		t.Fatalf("open of the existing bucket: %v", err)
	}
	s.Close()
}
