// Package format owns the byte layouts of a region's objects: the per-store
// config, the encryption envelope, packs, pack indexes, snapshot manifests
// and copying markers, and the region's key derivation. It does no I/O
// except ReadKeyFile. Every decoder checks bounds and versions and never
// panics on any input (fuzz tests in this package). The package doc of
// replicate draws how these objects sit in a store.
//
// Format versions only move up; a decoder given a newer version returns an
// error wrapping ErrUnsupportedVersion, and damaged input an error wrapping
// ErrCorrupt that names the object.
package format
