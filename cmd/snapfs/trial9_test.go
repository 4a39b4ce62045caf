package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/replicate"
)

// Trial 9: a file:// store that is full (or read-only) is reported as
// it is, not with a hint about the daemon's S3 credentials because the
// command's environment happens to hold AWS keys. Seen on main 7e801ae:
// `snapfs sync` to a region with a full file:// store, run with
// AWS_ACCESS_KEY_ID set (the README's region setup exports it), said
// "no space left on device (the daemon serving this store opened the
// stores with its own environment: S3 credentials set for this command
// are not used; ...)". An S3 store's failure still gets the hint.
func TestTrial9CredHintOnlyForS3(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	c := service.NewClient("/nonexistent.sock")
	defer c.Close()
	full := fmt.Errorf("%w: store 2 (file:///mnt/nas/t2): put pack x: write /mnt/nas/t2/packs/x: no space left on device", replicate.ErrUnavailable)
	if got := credHint(context.Background(), c, full, "", nil); strings.Contains(got.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("a full file:// store got the credentials hint: %v", got)
	}
	s3 := fmt.Errorf("%w: store 0 (s3://bkt/p): put pack x: 5 attempts failed: connection refused", replicate.ErrUnavailable)
	if got := credHint(context.Background(), c, s3, "", nil); !strings.Contains(got.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("an S3 store's failure lost the credentials hint: %v", got)
	}
}
