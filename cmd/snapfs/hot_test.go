package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

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
