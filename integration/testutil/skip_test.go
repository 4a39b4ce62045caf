package testutil

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how Skipf ended.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func run(t *testing.T) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Skipf(f, "no %s", "tool")
	}()
	<-done
	return f
}

func TestSkipf(t *testing.T) {
	for _, tc := range []struct {
		env          string
		skip, failed bool
	}{
		{"", true, false},
		{"0", true, false},
		{"1", false, true},
		{"yes", false, true},
	} {
		t.Setenv(DisallowSkipEnv, tc.env)
		f := run(t)
		if f.skipped != tc.skip || f.failed != tc.failed {
			t.Errorf("%s=%q: skipped=%v failed=%v, want %v %v", DisallowSkipEnv, tc.env, f.skipped, f.failed, tc.skip, tc.failed)
		}
		if !strings.Contains(f.msg, "no tool") {
			t.Errorf("%s=%q: message %q does not give the reason", DisallowSkipEnv, tc.env, f.msg)
		}
	}
}

// TestNoDirectSkips fails on a skip that does not go through Skipf, so a
// new test cannot pass CI by skipping.
func TestNoDirectSkips(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	direct := regexp.MustCompile(`(^|[^A-Za-z0-9_])[A-Za-z0-9_]+\.(Skip|Skipf|SkipNow)\(`)
	viaHelper := regexp.MustCompile(`testutil\.Skipf\(`)
	self, _ := filepath.Abs(".")
	var bad []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch {
			case path == self, path == filepath.Join(root, "tools"), strings.HasPrefix(d.Name(), ".") && path != root:
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if direct.MatchString(viaHelper.ReplaceAllString(line, "")) {
				rel, _ := filepath.Rel(root, path)
				bad = append(bad, fmt.Sprintf("%s:%d: %s", rel, i+1, strings.TrimSpace(line)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("skips that bypass testutil.Skipf (SNAPFS_TEST_DISALLOW_SKIP would not catch them):\n%s", strings.Join(bad, "\n"))
	}
}
