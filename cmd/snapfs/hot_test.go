package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/hot"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
	"github.com/snapfs/snapfs/rowstore"
)

// TestWireExitCodes: the light client (package wire, the front binary)
// exits with the code the full binary does for every wire code of the
// exit-code table, and for usage errors.
func TestWireExitCodes(t *testing.T) {
	for _, e := range exitcode.Table {
		full := exitcode.Of(&service.RemoteError{Code: e.Wire, Message: "x"})
		light := wire.ExitOf(&wire.Error{Code: e.Wire, Message: "x"})
		if full != light {
			t.Errorf("wire code %q: the full binary exits %d, the light client %d", e.Wire, full, light)
		}
	}
	if got := wire.ExitOf(&wire.Error{Code: "new_code_of_a_newer_daemon"}); got != exitcode.Failure {
		t.Errorf("unknown code: exit %d", got)
	}
	if got := wire.ExitOf(fmt.Errorf("x: %w", wire.Usagef("y"))); got != exitcode.Usage || exitcode.Of(wire.Usagef("y")) != exitcode.Usage {
		t.Errorf("usage: exit %d", got)
	}
	if !errors.Is(service.FromWire(&wire.Error{Code: "not_found", Message: "x"}), rowstore.ErrNotFound) {
		t.Error("FromWire does not wrap the sentinel")
	}
}

// TestHotCopiedConstants: values package hot cannot import from the engine.
func TestHotCopiedConstants(t *testing.T) {
	if want := strings.ReplaceAll(size(rowstore.DefaultBlockSize), " ", ""); hot.DefaultBlockSize != want {
		t.Errorf("hot's default block size %s is not rowstore.DefaultBlockSize (%s)", hot.DefaultBlockSize, want)
	}
	if hot.DefaultStore != DefaultStore || wire.DefaultHookTimeout != service.DefaultHookTimeout {
		t.Error("constants differ")
	}
}

// TestSnapshotListPolicyFailures: the policy_failure lines snapshot list
// prints from the answers are what the full binary printed from its
// values: {"type", "policy", then the disk's status}.
func TestSnapshotListPolicyFailures(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	for _, f := range hot.Lookup("snapshot list").Def().Flags {
		if err := f.Apply(fs); err != nil {
			t.Fatal(err)
		}
	}
	c := cli.NewContext(&cli.App{Name: "snapfs"}, fs, nil)
	c.Command = &cli.Command{Name: "list", HelpName: "snapfs snapshot list"}
	op, err := hot.Lookup("snapshot list").Op(c)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	failing := service.PolicyDiskStatus{Disk: "vol1", Failures: 2, LastError: "no space <left>", LastErrorAt: at, RetryAt: at.Add(time.Minute)}
	pols := []service.PolicyInfo{{Policy: service.Policy{Name: "nightly"}, Status: []service.PolicyDiskStatus{{Disk: "vol2"}, failing}}}
	snaps := []service.Snapshot{{ID: 1, Name: "s1", Created: at, Kind: "manual", State: "available", Disks: []service.SnapshotDisk{{Name: "vol1", Allocated: 4096}}}}
	raw, err := json.Marshal([]any{snaps, pols})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := op.Print(&hot.Printer{JSON: true, W: &out}, raw); err != nil {
		t.Fatal(err)
	}
	s1, _ := service.TypedJSON("snapshot", snaps[0])
	pf, _ := service.TypedJSON("policy_failure", struct {
		Policy string `json:"policy"`
		service.PolicyDiskStatus
	}{"nightly", failing})
	if want := string(s1) + "\n" + string(pf) + "\n"; out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if err := op.Print(&hot.Printer{W: &out}, raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "policy nightly on disk vol1: 2 failed run(s), last at "+when(at)+": no space <left> (retried at "+when(at.Add(time.Minute))+")\n") ||
		!strings.Contains(out.String(), "s1    "+when(at)+"  manual  available  vol1   4.0 KiB") {
		t.Errorf("text:\n%s", out.String())
	}
	// Policies that could not be listed: the snapshots alone.
	raw, _ = json.Marshal([]any{snaps, nil})
	out.Reset()
	if err := op.Print(&hot.Printer{JSON: true, W: &out}, raw); err != nil || out.String() != string(s1)+"\n" {
		t.Errorf("without policies: %q, %v", out.String(), err)
	}
}

// TestHotTextFromAnswers: the text of the hot listings shows the values of
// the answers. Package hot decodes the answers into its own light mirrors
// of the service's types; both binaries print through them, so a field
// renamed on one side only would print "-" or 0 in both alike, which
// comparing the binaries (cmd/snapfs/front's TestSameAsFull) cannot see.
func TestHotTextFromAnswers(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"init"},
		{"disk", "create", "vol1", "--size", "1M", "--block-size", "64K"},
		{"snapshot", "create", "s1", "--disk", "vol1"},
		{"image", "create", "im1", "--snapshot", "s1", "--disk", "vol1"},
		{"disk", "create", "c1", "--from-snapshot", "s1", "--disk", "vol1"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"snapfs", "--store", dir}, args...), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"disk", "list"}, []string{"vol1  1.0 MiB", "64 KiB", "c1    1.0 MiB", "s1/vol1"}},
		{[]string{"image", "list"}, []string{"im1   1.0 MiB  s1        vol1"}},
		{[]string{"snapshot", "list"}, []string{"s1    "}},
		{[]string{"status"}, []string{"store:", dir, "vol1  1          s1", "c1    0          -"}},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"snapfs", "--store", dir}, tc.args...), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errb.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: no %q in\n%s", tc.args, w, out.String())
			}
		}
	}
}
