package main

import (
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/hot"
)

// printer prints a command's results: text tables for people, or with
// --json one JSON object per line, each with a "type" field naming what it
// describes (disk, snapshot, image, range, diff, usage, store_usage, gc,
// deleted, status, snapmount, ...). Both forms come from the same values.
type printer struct {
	json bool
	w    io.Writer
}

func newPrinter(c *cli.Context, st *state) *printer {
	return &printer{json: c.Bool("json"), w: st.stdout}
}

// object prints v as one JSON line of type typ (JSON mode only).
func (p *printer) object(typ string, v any) error { return p.shared().Object(typ, v) }

// shared is p as package hot's printer (the hot commands print with it, in
// both binaries).
func (p *printer) shared() *hot.Printer { return &hot.Printer{JSON: p.json, W: p.w} }

// table prints rows under a header, aligned (text mode).
func (p *printer) table(header []string, rows [][]string) error {
	return p.shared().Table(header, rows)
}

// fields prints "key: value" lines (text mode).
func (p *printer) fields(kv ...string) error { return p.shared().Fields(kv...) }

// result prints a text line (text mode) or the JSON object (JSON mode).
func (p *printer) result(typ string, v any, format string, a ...any) error {
	return p.shared().Result(typ, v, format, a...)
}

// deleted reports a deletion.
type deleted struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (p *printer) deleted(kind, name string) error {
	return p.result("deleted", deleted{kind, name}, "deleted %s %s", kind, name)
}

func when(t time.Time) string { return hot.When(t) }

// list prints items: one JSON line of type typ each, or a table.
func list[T any](p *printer, typ string, items []T, header []string, row func(T) []string) error {
	if p.json {
		for _, it := range items {
			if err := p.object(typ, it); err != nil {
				return err
			}
		}
		return nil
	}
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		rows = append(rows, row(it))
	}
	return p.table(header, rows)
}
