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
