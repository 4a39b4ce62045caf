package hot

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestCommands: every hot command is named as its path says and leaves its
// Action to the binary that uses it.
func TestCommands(t *testing.T) {
	seen := map[string]bool{}
	for _, h := range Commands {
		if seen[h.Path] {
			t.Errorf("%s twice", h.Path)
		}
		seen[h.Path] = true
		words := strings.Fields(h.Path)
		d := h.Def()
		if d.Name != words[len(words)-1] || d.Action != nil || h.Op == nil {
			t.Errorf("%s: name %q, action set %v", h.Path, d.Name, d.Action != nil)
		}
		if d.Usage == "" {
			t.Errorf("%s: no usage", h.Path)
		}
	}
}

// TestPrintFromAnswer: text and --json from the daemon's answer; the JSON
// line is the answer with a leading type, byte for byte.
func TestPrintFromAnswer(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	for _, f := range snapshotCreate().Flags {
		if err := f.Apply(fs); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Parse([]string{"--disk", "a", "--disk", "b", "s1"}); err != nil {
		t.Fatal(err)
	}
	c := cli.NewContext(&cli.App{Name: "snapfs"}, fs, nil)
	c.Command = &cli.Command{Name: "create", HelpName: "snapfs snapshot create"}
	op, err := snapshotCreateOp(c)
	if err != nil {
		t.Fatal(err)
	}
	raw := json.RawMessage(`{"id":3,"name":"s1","disks":[],"consistency":"crash","note":"<&>"}`)
	var out bytes.Buffer
	if err := op.Print(&Printer{W: &out}, raw); err != nil || out.String() != "created snapshot s1 of a, b (crash-consistent)\n" {
		t.Errorf("text: %q, %v", out.String(), err)
	}
	out.Reset()
	want := `{"type":"snapshot","id":3,"name":"s1","disks":[],"consistency":"crash","note":"\u003c\u0026\u003e"}` + "\n"
	if err := op.Print(&Printer{JSON: true, W: &out}, raw); err != nil || out.String() != want {
		t.Errorf("json: %q, %v; want %q", out.String(), err, want)
	}
	if err := op.Print(&Printer{W: &out}, json.RawMessage(`[1]`)); err == nil {
		t.Error("a bad answer printed")
	}
}
