// Package testutil holds the helpers every snapfs test shares. It is
// imported by tests only.
//
// # Skips
//
// A test that cannot run here (no root, no /dev/fuse, a missing tool or
// server) calls Skipf, never t.Skip directly: Skipf prints the reason and
// skips, unless SNAPFS_TEST_DISALLOW_SKIP is set (scripts/test.sh sets it),
// when the skip becomes a failure. So the CI suite cannot pass by skipping.
// TestNoDirectSkips fails on any t.Skip, t.Skipf or t.SkipNow call in the
// tree outside this package, so a new test cannot bypass the switch.
package testutil
