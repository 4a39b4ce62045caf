package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestGeneratedDocsUpToDate: the man page, CLI reference and completion
// scripts checked in under cmd/snapfs/doc are what the command definitions
// generate (run scripts/gendoc.sh after changing a command).
func TestGeneratedDocsUpToDate(t *testing.T) {
	files, err := docFiles()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("doc", name))
		if err != nil {
			t.Errorf("%s: %v (run scripts/gendoc.sh)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("doc/%s differs from what the commands generate: run scripts/gendoc.sh", name)
		}
	}
	entries, _ := os.ReadDir("doc")
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok {
			t.Errorf("doc/%s is not generated any more: remove it", e.Name())
		}
	}
}

// TestEveryCommandHasAnExample: every command's help shows an example
// (examples.go).
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(prefix string, cs []*cli.Command)
	walk = func(prefix string, cs []*cli.Command) {
		for _, c := range cs {
			full := strings.TrimSpace(prefix + " " + c.Name)
			if c.Hidden {
				continue
			}
			if len(c.Subcommands) > 0 {
				walk(full, c.Subcommands)
				continue
			}
			if !strings.Contains(c.Description, "Examples:\n   snapfs ") && !strings.Contains(c.Description, "Examples:\n   umount") {
				t.Errorf("snapfs %s: no example in its help (add one to examples.go)", full)
			}
		}
	}
	walk("", newApp(&state{}).Commands)
}

// TestREADMEExitCodes: the README's exit-code table is exitcode.Codes
// (scripts/gendoc.sh writes it).
func TestREADMEExitCodes(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := withExitCodes(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if want != string(b) {
		t.Errorf("README.md's exit-code table is not exitcode.Markdown(): run scripts/gendoc.sh")
	}
}

// TestCompletionScripts: bash parses the script, and the words it asks
// snapfs for are the commands, subcommands and flags.
func TestCompletionScripts(t *testing.T) {
	app := newApp(&state{})
	for _, sh := range []string{"bash", "zsh", "fish"} {
		s, err := completionScript(app, sh)
		if err != nil || !strings.Contains(s, "snapfs") {
			t.Fatalf("%s: %v", sh, err)
		}
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		s, _ := completionScript(app, "bash")
		if out, err := exec.Command(bash, "-n", "-c", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v: %s", err, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"snapfs", "--generate-bash-completion"}, []string{"disk", "snapshot", "status", "version", "completion"}},
		{[]string{"snapfs", "disk", "--generate-bash-completion"}, []string{"create", "rollback"}},
		{[]string{"snapfs", "disk", "create", "-", "--generate-bash-completion"}, []string{"--size", "--block-size"}},
	} {
		var out, errb bytes.Buffer
		saved := os.Args
		os.Args = tc.args // urfave/cli's completion reads os.Args
		code := run(tc.args, &out, &errb)
		os.Args = saved
		if code != 0 {
			t.Errorf("%v: exit %d: %s", tc.args, code, errb.String())
		}
		words := strings.Fields(out.String())
		for _, w := range tc.want {
			if !contains(words, w) {
				t.Errorf("%v: %q not offered (got %v)", tc.args, w, words)
			}
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
