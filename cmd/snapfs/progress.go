package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/replicate"
)

// progress shows the events of a long region job (sync, restore, check,
// repair): with --json one JSON object per event on stdout, each with its
// "type" (start, snapshot, pack, blocks, done) and "op"; on a terminal
// (stderr) a progress bar per snapshot disk or job; otherwise nothing.
type progress struct {
	mu   sync.Mutex
	json bool
	out  io.Writer // --json: stdout
	tty  io.Writer // the terminal, or nil
	bar  *progressbar.ProgressBar
	key  string
}

func newProgress(c *cli.Context, st *state) *progress {
	p := &progress{json: c.Bool("json"), out: st.stdout}
	if !p.json && isTerminal(st.stderr) {
		p.tty = st.stderr
	}
	return p
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// fn is the service.Progress of p (nil when p shows nothing).
func (p *progress) fn() service.Progress {
	if !p.json && p.tty == nil {
		return nil
	}
	return p.event
}

func (p *progress) event(e replicate.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		if b, err := json.Marshal(e); err == nil {
			_, _ = p.out.Write(append(b, '\n'))
		}
		return
	}
	switch e.Type {
	case replicate.EventStart:
		return
	case replicate.EventDone:
		p.finish()
		return
	}
	key := e.Op + "\x00" + e.Snapshot + "\x00" + e.Disk
	if p.bar == nil || key != p.key || e.Type == replicate.EventSnapshot {
		p.finish()
		max := e.BlocksTotal
		if max <= 0 {
			max = -1
		}
		desc := e.Op
		if e.Snapshot != "" {
			desc += " " + e.Snapshot
			if e.Disk != "" {
				desc += "/" + e.Disk
			}
		}
		unit := "blocks"
		if e.Op == "check" {
			unit = "objects"
		} else if e.Op == "repair" {
			unit = "packs"
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(p.tty),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100_000_000),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.tty) }),
		)
		p.key = key
	}
	switch {
	case e.BlocksTotal > 0:
		if p.bar.GetMax64() != e.BlocksTotal {
			p.bar.ChangeMax64(e.BlocksTotal)
		}
		_ = p.bar.Set64(e.Blocks)
	case e.Type == replicate.EventPack:
		_ = p.bar.Add(1)
	}
}

// finish ends the current bar. p.mu is held.
func (p *progress) finish() {
	if p.bar != nil {
		if p.bar.GetMax64() < 0 {
			_ = p.bar.Exit()
			fmt.Fprintln(p.tty)
		} else {
			_ = p.bar.Finish()
		}
		p.bar = nil
	}
}

// done ends the display (after the job returned).
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty != nil {
		p.finish()
	}
}
