package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// version is snapfs's version, set at build time with
// -ldflags "-X main.version=v1.2.3"; otherwise the module's version or the
// VCS revision the binary was built from, or "devel".
var version = ""

// versionInfo is what `snapfs version` prints.
type versionInfo struct {
	Version        string `json:"version"`
	Go             string `json:"go"`
	StoreFormat    int    `json:"store_format"`    // superblock format version new stores get
	SegmentFormat  int    `json:"segment_format"`  // record format of the segment log
	ManifestFormat int    `json:"manifest_format"` // region snapshot manifests written by sync
}

func currentVersion() versionInfo {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && v == "devel" {
					v = "devel-" + s.Value
				}
			}
		}
	}
	return versionInfo{Version: v, Go: runtime.Version(), StoreFormat: rowstore.FormatVersion,
		SegmentFormat: segment.Version, ManifestFormat: format.ManifestVersion}
}

// versionString is the one line of `snapfs --version`.
func versionString() string {
	v := currentVersion()
	return fmt.Sprintf("%s (store format %d, segment format %d, region manifest format %d, %s)",
		v.Version, v.StoreFormat, v.SegmentFormat, v.ManifestFormat, v.Go)
}

func versionCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print snapfs's version and the format versions of the stores and regions it writes",
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			return newPrinter(c, st).result("version", currentVersion(), "snapfs %s", versionString())
		},
	}
}
