package main

import (
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
	got := credHint(c, err)
	if !strings.Contains(got.Error(), "daemon's environment") || !strings.Contains(got.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("no hint: %v", got)
	}
	if !strings.Contains(got.Error(), "Access Denied") {
		t.Fatalf("original error lost: %v", got)
	}
	// In-process (no daemon), or another error: unchanged.
	if got := credHint(nil, fmt.Errorf("%w: x", replicate.ErrNotFound)); strings.Contains(got.Error(), "daemon") {
		t.Fatalf("hint on an unrelated error: %v", got)
	}
}

// The store's own hint (no credentials anywhere, replicate/store/s3.go)
// already names the daemon's environment: credHint does not say it twice.
func TestCredentialHintNotTwice(t *testing.T) {
	err := fmt.Errorf("%w: store 3 (s3://127.0.0.1:9000/b): bucket exists: Access Denied (no S3 credentials in the store URL nor in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of process 1: with a snapfs daemon running, that is the daemon's environment, e.g. Environment= in its unit)", replicate.ErrUnavailable)
	c := service.NewClient("/nonexistent.sock")
	defer c.Close()
	if got := credHint(c, err).Error(); strings.Count(got, "daemon's environment") != 1 {
		t.Fatalf("the hint said %d times: %v", strings.Count(got, "daemon's environment"), got)
	}
}
