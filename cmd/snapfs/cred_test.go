package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/replicate"
)

// Issue 9 finding 5: an S3 failure through the daemon says that the
// daemon's environment holds the credentials, not the command's.
func TestCredentialHintThroughDaemon(t *testing.T) {
	err := fmt.Errorf("%w: store 0: bucket exists: Access Denied", replicate.ErrUnavailable)
	c := service.NewClient("/nonexistent.sock")
	defer c.Close()
	got := credHint(context.Background(), c, err, "", nil)
	if !strings.Contains(got.Error(), "daemon's environment") || !strings.Contains(got.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("no hint: %v", got)
	}
	if !strings.Contains(got.Error(), "Access Denied") {
		t.Fatalf("original error lost: %v", got)
	}
	// In-process (no daemon), or another error: unchanged.
	if got := credHint(context.Background(), nil, fmt.Errorf("%w: x", replicate.ErrNotFound), "", nil); strings.Contains(got.Error(), "daemon") {
		t.Fatalf("hint on an unrelated error: %v", got)
	}
}

// The store's own hint (no credentials anywhere, replicate/store/s3.go)
// already names the daemon's environment: credHint does not say it twice.
func TestCredentialHintNotTwice(t *testing.T) {
	err := fmt.Errorf("%w: store 3 (s3://127.0.0.1:9000/b): bucket exists: Access Denied (no S3 credentials in the store URL nor in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of process 1: with a snapfs daemon running, that is the daemon's environment, e.g. Environment= in its unit)", replicate.ErrUnavailable)
	c := service.NewClient("/nonexistent.sock")
	defer c.Close()
	if got := credHint(context.Background(), c, err, "", nil).Error(); strings.Count(got, "daemon's environment") != 1 {
		t.Fatalf("the hint said %d times: %v", strings.Count(got, "daemon's environment"), got)
	}
}

// Trial 15: a region add whose S3 store URL carries its credentials
// (s3://KEY:SECRET@bucket/p) and a wrong secret said "set AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY in the daemon's environment ... or put them in
// the store URL": they were in the URL, and the environment is not used.
// It says the URL's credentials were refused; a URL without them keeps the
// daemon hint.
func TestTrial15CredHintURLCredentials(t *testing.T) {
	c := service.NewClient("/nonexistent.sock")
	defer c.Close()
	denied := fmt.Errorf("%w: store 2: s3://bucket2/p: bucket exists: Access Denied.", replicate.ErrUnavailable)
	got := credHint(context.Background(), c, denied, "", []string{"file:///a", "file:///b", "s3://AK:wrong@bucket2/p"}).Error()
	if strings.Contains(got, "daemon's environment") || !strings.Contains(got, "credentials in the S3 store URL were refused") || strings.Contains(got, "wrong") {
		t.Errorf("URL credentials refused: %q", got)
	}
	got = credHint(context.Background(), c, denied, "", []string{"file:///a", "file:///b", "s3://bucket2/p"}).Error()
	if !strings.Contains(got, "daemon's environment") {
		t.Errorf("no URL credentials: the daemon hint is gone: %q", got)
	}
	// A failure that is not about credentials gets no hint.
	down := fmt.Errorf("%w: store 2: s3://bucket2/p: connection refused", replicate.ErrUnavailable)
	if got := credHint(context.Background(), c, down, "", []string{"s3://AK:S@bucket2/p"}); got != down {
		t.Errorf("connection refused with URL credentials: %q", got)
	}
}
