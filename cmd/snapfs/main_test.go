package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"4096", 4096}, {"64K", 64 << 10}, {"64k", 64 << 10}, {"512M", 512 << 20}, {"10G", 10 << 30},
		{"1T", 1 << 40}, {"1GiB", 1 << 30}, {"1GB", 1e9}, {"1.5G", 3 << 29},
	} {
		got, err := parseSize("size", tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "12Q", "1e400", "99999999999999999999T"} {
		if _, err := parseSize("size", bad); !errors.Is(err, rowstore.ErrInvalid) {
			t.Errorf("parseSize(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

func TestReorderArgs(t *testing.T) {
	app := newApp(&state{})
	for _, tc := range []struct{ in, want string }{
		{"snapfs disk create vol1 --size 1G", "snapfs disk create --size 1G -- vol1"},
		{"snapfs --json disk list", "snapfs --json disk list"},
		{"snapfs disk info vol1 --json", "snapfs --json disk info -- vol1"},
		{"snapfs snapshot mount S --disk D /mnt --fstype ext4", "snapfs snapshot mount --disk D --fstype ext4 -- S /mnt"},
		{"snapfs --store /s snapshot create s --disk a --disk b", "snapfs --store /s snapshot create --disk a --disk b -- s"},
		{"snapfs disk delete -- -x", "snapfs disk delete -- -x"},
		{"snapfs mount /m --background", "snapfs mount --background -- /m"},
	} {
		got, err := reorderArgs(app, strings.Fields(tc.in))
		if err != nil || !slices.Equal(got, strings.Fields(tc.want)) {
			t.Errorf("reorderArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := reorderArgs(app, strings.Fields("snapfs disk create x --size")); !errors.Is(err, exitcode.ErrUsage) {
		t.Errorf("a flag without its value: %v", err)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"snapfs", "--store", dir, "bogus"}, exitcode.Usage},
		{[]string{"snapfs", "--store", dir, "disk", "list"}, exitcode.NotFound},
		{[]string{"snapfs", "--store", dir, "init"}, exitcode.OK},
		{[]string{"snapfs", "--store", dir, "init"}, exitcode.Exists},
		{[]string{"snapfs", "--store", dir, "disk", "create", "a b", "--size", "1M"}, exitcode.Usage},
		{[]string{"snapfs", "--store", dir, "disk", "create", "ab", "--size", "1M"}, exitcode.OK},
		{[]string{"snapfs", "--store", dir, "--log-level", "loud", "disk", "list"}, exitcode.Usage},
		{[]string{"snapfs", "--store", dir, "snapshot", "info", "nope"}, exitcode.NotFound},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, code, tc.code, errb.String())
		}
		if tc.code != 0 && (!strings.HasPrefix(errb.String(), "snapfs: ") || strings.Count(errb.String(), "\n") != 1) {
			t.Errorf("%v: stderr %q is not one line", tc.args, errb.String())
		}
	}
}
