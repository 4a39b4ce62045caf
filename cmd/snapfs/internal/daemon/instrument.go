package daemon

import (
	"errors"
	"io"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/metrics"
	"github.com/snapfs/snapfs/fs"
)

// instrumented counts the mount's reads, writes and flushes in the metrics.
// It wraps the handles the backend opens; everything else passes through.
type instrumented struct {
	fs.Backend
	m *metrics.Metrics
}

func instrument(b fs.Backend, m *metrics.Metrics) fs.Backend {
	if m == nil {
		return b
	}
	return &instrumented{Backend: b, m: m}
}

func (b *instrumented) OpenDisk(name string) (fs.DiskHandle, error) {
	h, err := b.Backend.OpenDisk(name)
	if err != nil {
		return nil, err
	}
	return &diskHandle{DiskHandle: h, m: b.m}, nil
}

func (b *instrumented) OpenSnapshotDisk(snap, disk string) (fs.ReadHandle, error) {
	h, err := b.Backend.OpenSnapshotDisk(snap, disk)
	if err != nil {
		return nil, err
	}
	return &readHandle{ReadHandle: h, m: b.m, kind: "snapshot"}, nil
}

func (b *instrumented) OpenImage(name string) (fs.ReadHandle, error) {
	h, err := b.Backend.OpenImage(name)
	if err != nil {
		return nil, err
	}
	return &readHandle{ReadHandle: h, m: b.m, kind: "image"}, nil
}

// ioErr is err unless it is the io.EOF a read at the end returns.
func ioErr(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

type readHandle struct {
	fs.ReadHandle
	m    *metrics.Metrics
	kind string
}

func (h *readHandle) ReadAt(p []byte, off int64) (int, error) {
	t := time.Now()
	n, err := h.ReadHandle.ReadAt(p, off)
	h.m.IO("read", h.kind, n, time.Since(t), ioErr(err))
	return n, err
}

type diskHandle struct {
	fs.DiskHandle
	m *metrics.Metrics
}

func (h *diskHandle) ReadAt(p []byte, off int64) (int, error) {
	t := time.Now()
	n, err := h.DiskHandle.ReadAt(p, off)
	h.m.IO("read", "disk", n, time.Since(t), ioErr(err))
	return n, err
}

func (h *diskHandle) WriteAt(p []byte, off int64) (int, error) {
	t := time.Now()
	n, err := h.DiskHandle.WriteAt(p, off)
	h.m.IO("write", "disk", n, time.Since(t), err)
	return n, err
}

func (h *diskHandle) Sync() error {
	t := time.Now()
	err := h.DiskHandle.Sync()
	h.m.IO("flush", "disk", 0, time.Since(t), err)
	return err
}
