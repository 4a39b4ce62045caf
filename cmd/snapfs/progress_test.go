package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/replicate"
)

// TestPlainProgress: off a terminal a job prints a line per interval, none
// for a job that ends sooner; an interruption says what finished.
func TestPlainProgress(t *testing.T) {
	var out bytes.Buffer
	p := &progress{plain: &out, started: time.Now()}
	p.lastLine = p.started
	p.event(replicate.Event{Type: replicate.EventSnapshot, Op: "sync", Region: "dr", Snapshot: "s1"})
	if out.Len() != 0 {
		t.Fatalf("a line before the first interval: %q", out.String())
	}
	saved := plainEvery
	plainEvery = 0
	defer func() { plainEvery = saved }()
	p.event(replicate.Event{Type: replicate.EventBlocks, Op: "sync", Region: "dr", Snapshot: "s1", Disk: "d", Blocks: 5, BlocksTotal: 20, Bytes: 5 << 20})
	line := out.String()
	if !strings.HasPrefix(line, "sync dr: snapshot s1 disk d: 5/20 (25%), 5.0 MiB, ") || strings.Count(line, "\n") != 1 {
		t.Fatalf("plain line %q", line)
	}
	err := p.interrupted(context.Canceled, "snapshots", []string{"s0"}, "run it again")
	if !errors.Is(err, exitcode.ErrInterrupted) || !errors.Is(err, context.Canceled) || exitcode.Of(err) != exitcode.Interrupted {
		t.Fatalf("interrupted error %v does not wrap its causes", err)
	}
	if got, want := exitcode.Message(err), "interrupted: snapshots finished: s0; s1 was in progress; run it again"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

// TestInterruptible: a SIGINT cancels the context with the signal as its
// cause; stop releases it.
func TestInterruptible(t *testing.T) {
	ctx, stop := interruptible(context.Background())
	defer stop()
	if interruptedBySignal(ctx) {
		t.Fatal("interrupted before any signal")
	}
	stop()
	if interruptedBySignal(ctx) {
		t.Fatal("stop is not an interruption")
	}
	ctx, stop = interruptible(context.Background())
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT did not cancel")
	}
	if !interruptedBySignal(ctx) {
		t.Fatalf("cause %v", context.Cause(ctx))
	}
}
