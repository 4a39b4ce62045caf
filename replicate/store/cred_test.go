package store_test

import (
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
