package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// RealPath is p made absolute with every symlink resolved in the part of
// it that exists; its last elements may not exist yet and are kept as
// given. Errors other than a missing element are returned.
func RealPath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// Contains reports whether path is dir or inside it, both clean absolute
// paths (RealPath's).
func Contains(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
