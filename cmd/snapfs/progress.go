package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/replicate"
)

// progress shows the events of a long region job (sync, restore, check,
// repair): with --json one JSON object per event on stdout, each with its
// "type" (start, snapshot, pack, blocks, done) and "op"; on a terminal
// (stderr) a progress bar per snapshot disk or job (schollz/progressbar);
// otherwise, or with --progress plain, one line on stderr every
// plainEvery (none for a job that ends sooner). --progress none shows
// nothing. The command prints its summary when the job ends.
type progress struct {
	mu   sync.Mutex
	json bool
	out  io.Writer // --json: stdout
	tty  io.Writer // the terminal, or nil
	bar  *progressbar.ProgressBar
	key  string

	plain     io.Writer // plain lines, or nil
	started   time.Time
	lastLine  time.Time
	last      replicate.Event // the newest event
	snapshots []string        // snapshots (or disks) whose job finished
	current   string          // the snapshot being worked on
}

// plainEvery is the interval of plain progress lines.
var plainEvery = 5 * time.Second

func newProgress(c *cli.Context, st *state) *progress {
	p := &progress{json: c.Bool("json"), out: st.stdout, started: time.Now()}
	p.lastLine = p.started
	if p.json {
		return p
	}
	switch progressMode(c) {
	case "bar":
		p.tty = st.stderr
	case "plain":
		p.plain = st.stderr
	case "auto":
		if isTerminal(st.stderr) {
			p.tty = st.stderr
		} else {
			p.plain = st.stderr
		}
	}
	return p
}

// progressMode is the global --progress: auto, bar, plain or none.
func progressMode(c *cli.Context) string {
	for _, l := range c.Lineage() {
		if v := l.String("progress"); v != "" {
			return v
		}
	}
	return "auto"
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
	return p.event
}

func (p *progress) event(e replicate.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.track(e)
	if p.plain != nil {
		if now := time.Now(); now.Sub(p.lastLine) >= plainEvery {
			p.lastLine = now
			fmt.Fprintln(p.plain, p.line(now))
		}
		return
	}
	if p.tty == nil && !p.json {
		return
	}
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

// track keeps what an interruption or a plain line reports. p.mu is held.
func (p *progress) track(e replicate.Event) {
	p.last = e
	if e.Type == replicate.EventSnapshot && e.Snapshot != "" && e.Snapshot != p.current {
		p.current = e.Snapshot
	}
}

// line is one plain progress line.
func (p *progress) line(now time.Time) string {
	e := p.last
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Region != "" {
		b.WriteString(" " + e.Region)
	}
	if e.Snapshot != "" {
		b.WriteString(": snapshot " + e.Snapshot)
		if e.Disk != "" {
			b.WriteString(" disk " + e.Disk)
		}
	}
	switch {
	case e.BlocksTotal > 0:
		fmt.Fprintf(&b, ": %d/%d (%d%%)", e.Blocks, e.BlocksTotal, e.Blocks*100/e.BlocksTotal)
	case e.Blocks > 0:
		fmt.Fprintf(&b, ": %d", e.Blocks)
	}
	if e.Bytes > 0 {
		b.WriteString(", " + size(e.Bytes))
	}
	fmt.Fprintf(&b, ", %s elapsed", now.Sub(p.started).Round(time.Second))
	return b.String()
}

// interrupted is the error of a job stopped by SIGINT/SIGTERM: what was
// finished (done: the names the job's result lists) and what a new run
// resumes. It wraps err and exitcode.ErrInterrupted (exit 130).
func (p *progress) interrupted(err error, what string, done []string, resume string) error {
	p.mu.Lock()
	cur := p.current
	p.mu.Unlock()
	var msg string
	if len(done) > 0 {
		msg = fmt.Sprintf("%s finished: %s", what, strings.Join(done, ", "))
	} else {
		msg = fmt.Sprintf("no %s finished", what)
	}
	if cur != "" && !slices.Contains(done, cur) {
		msg += fmt.Sprintf("; %s was in progress", cur)
	}
	if resume != "" {
		msg += "; " + resume
	}
	return &interruptedError{msg: msg, err: err}
}

type interruptedError struct {
	msg string
	err error
}

func (e *interruptedError) Error() string   { return "interrupted: " + e.msg }
func (e *interruptedError) Unwrap() []error { return []error{exitcode.ErrInterrupted, e.err} }
