//go:build tools

// Package tools pins the versitygw S3 gateway used by the S3 store tests.
// It is a separate module so the main go.mod stays free of versitygw's
// dependency tree. scripts/versitygw.sh installs the binary from here.
package tools

import (
	_ "github.com/versity/versitygw/cmd/versitygw"
)
