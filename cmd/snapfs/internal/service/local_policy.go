package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/policy"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Policy is an automatic snapshot policy (rowstore/policy).
type Policy = policy.Policy

// PolicyInfo is a policy with the scheduler's state per disk.
type PolicyInfo struct {
	Policy
	Status []PolicyDiskStatus `json:"status"`
}

// PolicyDiskStatus is the scheduler's state of one policy on one disk.
type PolicyDiskStatus struct {
	Disk string `json:"disk"`
	// LastRun is the scheduled instant of the last snapshot taken (zero:
	// none yet); LastSnapshot its name. Next is the next scheduled instant.
	LastRun      time.Time `json:"last_run,omitzero"`
	LastSnapshot string    `json:"last_snapshot,omitempty"`
	Next         time.Time `json:"next,omitzero"`
	// Failures counts consecutive failed runs; LastError and LastErrorAt
	// describe the last one; RetryAt is when it is tried again.
	Failures    int       `json:"failures,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
	// CopyPending are snapshots still to copy to the policy's region (a
	// failed copy is retried with the next run).
	CopyPending []string `json:"copy_pending,omitempty"`
}

// policyState is the scheduler's state of a Local, kept in
// <store>/policies/status.json (a cache: lost, the next run takes at most
// one extra snapshot per policy and disk).
type policyState struct {
	mu     sync.Mutex
	loaded bool
	status map[string]map[string]*PolicyDiskStatus // policy -> disk
	run    sync.Mutex                              // one RunPolicies at a time
	// edit serialises the read-modify-write of policy records (apply,
	// cancel, delete). It is not run: a long run (a copy to a region) never
	// blocks them; a run works on the records it read, and writes none.
	edit sync.Mutex
}

func (l *Local) statusPath() string { return filepath.Join(l.dir, "policies", "status.json") }

// statusLocked returns the status of policy on disk (made on first use).
// l.pol.mu is held.
func (l *Local) statusLocked(pol, disk string) *PolicyDiskStatus {
	if !l.pol.loaded {
		l.pol.loaded = true
		l.pol.status = map[string]map[string]*PolicyDiskStatus{}
		if b, err := os.ReadFile(l.statusPath()); err == nil {
			var f struct {
				Version int                                     `json:"version"`
				Status  map[string]map[string]*PolicyDiskStatus `json:"status"`
			}
			if json.Unmarshal(b, &f) == nil && f.Version == 1 && f.Status != nil {
				l.pol.status = f.Status
			}
		}
	}
	m := l.pol.status[pol]
	if m == nil {
		m = map[string]*PolicyDiskStatus{}
		l.pol.status[pol] = m
	}
	st := m[disk]
	if st == nil {
		st = &PolicyDiskStatus{Disk: disk}
		m[disk] = st
	}
	return st
}

// saveStatusLocked writes the status file (best effort). l.pol.mu is held.
func (l *Local) saveStatusLocked() {
	b, err := json.Marshal(struct {
		Version int                                     `json:"version"`
		Status  map[string]map[string]*PolicyDiskStatus `json:"status"`
	}{1, l.pol.status})
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(l.statusPath()), 0o700); err == nil {
		err = vfs.WriteFile(vfs.Default, l.statusPath(), b, 0o600)
		if err != nil {
			l.log.Warn("policy status not saved", "err", err)
		}
	}
}

func invalidPolicy(err error) error {
	if errors.Is(err, policy.ErrInvalid) {
		return fmt.Errorf("%w: %w", rowstore.ErrInvalid, err)
	}
	return err
}

func (l *Local) loadPolicy(name string) (Policy, error) {
	r, err := l.store.GetPolicy(name)
	if err != nil {
		return Policy{}, err
	}
	p, err := policy.Decode(r.Spec)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: policy %q: %w", rowstore.ErrCorrupt, name, err)
	}
	return p, nil
}

func (l *Local) savePolicy(p Policy, create bool) error {
	b, err := policy.Encode(p)
	if err != nil {
		return invalidPolicy(err)
	}
	return l.store.PutPolicy(p.Name, b, create)
}

func (l *Local) policyInfo(p Policy, now time.Time) PolicyInfo {
	info := PolicyInfo{Policy: p, Status: []PolicyDiskStatus{}}
	l.pol.mu.Lock()
	defer l.pol.mu.Unlock()
	for _, d := range p.Disks {
		st := *l.statusLocked(p.Name, d)
		st.Next = p.Next(now)
		info.Status = append(info.Status, st)
	}
	return info
}

// CreatePolicy implements Service.
func (l *Local) CreatePolicy(_ context.Context, p Policy) (PolicyInfo, error) {
	if err := rowstore.ValidateName("policy", p.Name); err != nil {
		return PolicyInfo{}, err
	}
	p.Created = time.Now().UTC()
	if err := p.Normalize(); err != nil {
		return PolicyInfo{}, invalidPolicy(err)
	}
	if p.CopyTo != "" {
		if _, err := l.GetRegion(context.Background(), p.CopyTo); err != nil {
			return PolicyInfo{}, err
		}
	}
	disks := p.Disks
	p.Disks, p.Applied = nil, nil
	for _, d := range disks {
		if err := l.applyDisk(&p, d, p.Created); err != nil {
			return PolicyInfo{}, err
		}
	}
	if err := l.savePolicy(p, true); err != nil {
		return PolicyInfo{}, err
	}
	l.log.Info("policy created", "policy", p.Name, "disks", p.Disks)
	return l.policyInfo(p, time.Now()), nil
}

func (l *Local) applyDisk(p *Policy, disk string, now time.Time) error {
	if _, err := l.store.GetDisk(disk); err != nil {
		return err
	}
	if slices.Contains(p.Disks, disk) {
		return nil
	}
	// Every run would fail on its snapshot's name (trial 8): refuse now.
	if n := policy.SnapshotName(p.Name, disk, time.Time{}); len(n) > rowstore.MaxNameLen {
		return fmt.Errorf("%w: policy %q on disk %q: its snapshots' names (%q + a time, %d characters) would be longer than %d characters: choose a shorter policy name",
			rowstore.ErrInvalid, p.Name, disk, p.Name+"-"+disk+"-", len(n), rowstore.MaxNameLen)
	}
	p.Disks = append(p.Disks, disk)
	if p.Applied == nil {
		p.Applied = map[string]time.Time{}
	}
	p.Applied[disk] = now.UTC()
	return nil
}

// ApplyPolicy implements Service.
func (l *Local) ApplyPolicy(_ context.Context, name string, disks []string) (PolicyInfo, error) {
	if len(disks) == 0 {
		return PolicyInfo{}, fmt.Errorf("%w: policy apply needs at least one --disk", rowstore.ErrInvalid)
	}
	l.pol.edit.Lock()
	defer l.pol.edit.Unlock()
	p, err := l.loadPolicy(name)
	if err != nil {
		return PolicyInfo{}, err
	}
	now := time.Now()
	for _, d := range disks {
		if err := l.applyDisk(&p, d, now); err != nil {
			return PolicyInfo{}, err
		}
	}
	if err := l.savePolicy(p, false); err != nil {
		return PolicyInfo{}, err
	}
	return l.policyInfo(p, now), nil
}

// CancelPolicy implements Service.
func (l *Local) CancelPolicy(_ context.Context, name string, disks []string) (PolicyInfo, error) {
	if len(disks) == 0 {
		return PolicyInfo{}, fmt.Errorf("%w: policy cancel needs at least one --disk", rowstore.ErrInvalid)
	}
	l.pol.edit.Lock()
	defer l.pol.edit.Unlock()
	p, err := l.loadPolicy(name)
	if err != nil {
		return PolicyInfo{}, err
	}
	for _, d := range disks {
		if !slices.Contains(p.Disks, d) {
			return PolicyInfo{}, fmt.Errorf("%w: policy %q is not applied to disk %q", rowstore.ErrNotFound, name, d)
		}
		p.Disks = slices.DeleteFunc(p.Disks, func(x string) bool { return x == d })
		delete(p.Applied, d)
	}
	if err := l.savePolicy(p, false); err != nil {
		return PolicyInfo{}, err
	}
	l.pol.mu.Lock()
	for _, d := range disks {
		l.statusLocked(name, d) // loads the file
		delete(l.pol.status[name], d)
	}
	l.saveStatusLocked()
	l.pol.mu.Unlock()
	return l.policyInfo(p, time.Now()), nil
}

// ListPolicies implements Service.
func (l *Local) ListPolicies(_ context.Context) ([]PolicyInfo, error) {
	rs, err := l.store.ListPolicies()
	if err != nil {
		return nil, err
	}
	out := []PolicyInfo{}
	now := time.Now()
	for _, r := range rs {
		p, err := policy.Decode(r.Spec)
		if err != nil {
			return nil, fmt.Errorf("%w: policy %q: %w", rowstore.ErrCorrupt, r.Name, err)
		}
		out = append(out, l.policyInfo(p, now))
	}
	return out, nil
}

// GetPolicy implements Service.
func (l *Local) GetPolicy(_ context.Context, name string) (PolicyInfo, error) {
	p, err := l.loadPolicy(name)
	if err != nil {
		return PolicyInfo{}, err
	}
	return l.policyInfo(p, time.Now()), nil
}

// DeletePolicy implements Service.
func (l *Local) DeletePolicy(_ context.Context, name string) error {
	l.pol.edit.Lock()
	defer l.pol.edit.Unlock()
	if err := l.store.DeletePolicy(name); err != nil {
		return err
	}
	l.pol.mu.Lock()
	if l.pol.loaded {
		delete(l.pol.status, name)
		l.saveStatusLocked()
	}
	l.pol.mu.Unlock()
	return nil
}

// snapsOf lists what the policy rules need of the snapshots holding disk.
func snapsOf(sis []rowstore.SnapshotInfo, disk string) []policy.Snap {
	var out []policy.Snap
	for _, si := range sis {
		if hasDisk(si, disk) {
			out = append(out, policy.Snap{Name: si.Name, Created: si.Created, Kind: si.Kind, Policy: si.Policy, Seq: si.ID})
		}
	}
	return out
}

// PolicyRun is what one RunPolicies pass did.
type PolicyRun struct {
	Taken   []string `json:"taken,omitempty"`
	Expired []string `json:"expired,omitempty"`
	Evicted []string `json:"evicted,omitempty"`
	Copied  []string `json:"copied,omitempty"`
	Failed  []string `json:"failed,omitempty"` // "policy/disk: error"
	// Outcomes has one entry per policy and disk that had work to do
	// (a snapshot due, or a retry): its error, or "" (for metrics).
	Outcomes []PolicyOutcome `json:"outcomes,omitempty"`
}

// PolicyOutcome is the result of one policy's run on one disk.
type PolicyOutcome struct {
	Policy string `json:"policy"`
	Disk   string `json:"disk"`
	Error  string `json:"error,omitempty"`
}

// Retry backoff of a failed run: RetryMin, doubling, at most RetryMax.
const (
	RetryMin = time.Minute
	RetryMax = time.Hour
)

// RunPolicies runs every policy once at now (the daemon's scheduler calls
// it on every tick; tests call it with their own clock): for each disk of
// each policy whose snapshot is due, it evicts for the quota, takes the
// snapshot (named from policy, disk and the scheduled UTC time, kind
// automatic, with the policy's consistency), expires the policy's
// automatic snapshots its retention drops, and copies the new one to the
// policy's region, then applies the policy's remote retention there. A
// failed run is logged, recorded in the status and retried with backoff.
func (l *Local) RunPolicies(ctx context.Context, now time.Time) PolicyRun {
	l.pol.run.Lock()
	defer l.pol.run.Unlock()
	var run PolicyRun
	rs, err := l.store.ListPolicies()
	if err != nil {
		l.log.Error("policies: list", "err", err)
		run.Failed = append(run.Failed, "list: "+err.Error())
		return run
	}
	for _, r := range rs {
		p, err := policy.Decode(r.Spec)
		if err != nil {
			l.log.Error("policies: unreadable policy", "policy", r.Name, "err", err)
			run.Failed = append(run.Failed, r.Name+": "+err.Error())
			continue
		}
		for _, d := range p.Disks {
			if ctx.Err() != nil {
				return run
			}
			l.runOne(ctx, &p, d, now, &run)
		}
	}
	return run
}

func (l *Local) runOne(ctx context.Context, p *Policy, disk string, now time.Time, run *PolicyRun) {
	// The record as it is now: a policy deleted, or a disk cancelled, while
	// this pass ran takes no more snapshots.
	cur, err := l.loadPolicy(p.Name)
	if err != nil || !slices.Contains(cur.Disks, disk) {
		return
	}
	p = &cur
	l.pol.mu.Lock()
	st := l.statusLocked(p.Name, disk)
	last, retryAt, pending := st.LastRun, st.RetryAt, slices.Clone(st.CopyPending)
	l.pol.mu.Unlock()
	if last.IsZero() {
		last = p.Applied[disk]
	}
	if last.After(now) {
		// The clock went back (an NTP step, a wrong time fixed): the last
		// run is in its future. Count the schedule's latest point at or
		// before now as run, so the next point is due by the clock we
		// have, not only once it reaches the last run again (a day, or
		// years after a clock once set far ahead); a small step back
		// takes no extra snapshot.
		l.log.Warn("policy: the clock went back past the last run; the schedule goes on from the current time", "policy", p.Name, "disk", disk, "last_run", last, "now", now)
		last = now
		if t, ok := p.Last(now); ok {
			last = t
		}
		retryAt = time.Time{}
		l.pol.mu.Lock()
		st := l.statusLocked(p.Name, disk)
		st.LastRun, st.RetryAt = last.UTC(), time.Time{}
		l.saveStatusLocked()
		l.pol.mu.Unlock()
	}
	due, isDue := p.Due(last, now)
	if !retryAt.IsZero() && now.Before(retryAt) {
		return
	}
	if _, err := l.store.GetDisk(disk); errors.Is(err, rowstore.ErrNotFound) {
		// The disk was deleted (its snapshots stay): there is nothing to
		// take and nothing failed; the retention below still applies to
		// the snapshots the policy took of it.
		isDue = false
	}
	fail := func(what string, err error) {
		l.log.Error("policy run failed", "policy", p.Name, "disk", disk, "step", what, "err", err)
		run.Failed = append(run.Failed, fmt.Sprintf("%s/%s: %s: %v", p.Name, disk, what, err))
		run.Outcomes = append(run.Outcomes, PolicyOutcome{Policy: p.Name, Disk: disk, Error: fmt.Sprintf("%s: %v", what, err)})
		l.pol.mu.Lock()
		st := l.statusLocked(p.Name, disk)
		st.Failures++
		st.LastError, st.LastErrorAt = fmt.Sprintf("%s: %v", what, err), now.UTC()
		st.RetryAt = now.Add(min(RetryMin<<min(st.Failures-1, 10), RetryMax)).UTC()
		l.saveStatusLocked()
		l.pol.mu.Unlock()
	}
	if isDue {
		name, taken, err := l.policySnapshotName(p.Name, disk, due)
		if err != nil {
			fail("snapshot name", err)
			return
		}
		if taken {
			// Taken before (the status was lost): the run is done.
		} else {
			sis, err := l.store.ListSnapshots()
			if err != nil {
				fail("list snapshots", err)
				return
			}
			q := l.quotas()
			ev, err := policy.Evict(snapsOf(sis, disk), p.Name, q.Quota)
			if err != nil {
				fail("quota", err)
				return
			}
			if q.MaxSnapshotBytes > 0 && len(ev) == 0 {
				// The store-wide cap on snapshot bytes: the policy's oldest
				// automatic snapshot of this disk goes first.
				used, err := l.snapshotBytes()
				if err != nil {
					fail("quota", err)
					return
				}
				if used >= q.MaxSnapshotBytes {
					if old := policy.Expired(snapsOf(sis, disk), p.Name, policy.Retention{Count: max(countOf(snapsOf(sis, disk), p.Name)-1, 0)}, now); len(old) > 0 {
						ev = old[:1]
					}
				}
			}
			for _, e := range ev {
				if err := l.deleteSnapshot(e.Name); err != nil && !errors.Is(err, rowstore.ErrNotFound) {
					fail("evict "+e.Name, err)
					return
				}
				l.log.Info("policy: evicted for the quota", "policy", p.Name, "disk", disk, "snapshot", e.Name)
				run.Evicted = append(run.Evicted, e.Name)
				l.namesChanged()
			}
			req := CreateSnapshotRequest{Name: name, Disks: []string{disk}, PreHook: p.Hooks.PreHook, PostHook: p.Hooks.PostHook,
				HookTimeout: p.Hooks.Timeout, OnPreHookFailure: p.Hooks.OnPreHookFailure}
			if p.Consistency != policy.ConsistencyCrash {
				if mp := p.Hooks.Freeze[disk]; mp != "" {
					req.Freeze = []string{mp}
				}
			}
			if _, err := l.takeSnapshot(ctx, req, rowstore.SnapshotOptions{Kind: policy.KindAutomatic, Policy: p.Name}); err != nil {
				fail("snapshot", err)
				return
			}
			l.log.Info("policy: snapshot taken", "policy", p.Name, "disk", disk, "snapshot", name)
			run.Taken = append(run.Taken, name)
		}
		if p.CopyTo != "" {
			pending = append(pending, name)
		}
		l.pol.mu.Lock()
		st := l.statusLocked(p.Name, disk)
		st.LastRun, st.LastSnapshot = due.UTC(), name
		st.CopyPending = pending
		l.saveStatusLocked()
		l.pol.mu.Unlock()
	}
	// Local retention: only this policy's automatic snapshots.
	sis, err := l.store.ListSnapshots()
	if err != nil {
		fail("list snapshots", err)
		return
	}
	for _, e := range policy.Expired(snapsOf(sis, disk), p.Name, p.Retain, now) {
		if err := l.deleteSnapshot(e.Name); err != nil && !errors.Is(err, rowstore.ErrNotFound) {
			fail("expire "+e.Name, err)
			return
		}
		l.log.Info("policy: snapshot expired", "policy", p.Name, "disk", disk, "snapshot", e.Name)
		run.Expired = append(run.Expired, e.Name)
		l.namesChanged()
	}
	if p.CopyTo != "" && len(pending) > 0 {
		if err := l.copyPending(ctx, p, disk, pending, now, run); err != nil {
			fail("copy to "+p.CopyTo, err)
			return
		}
	}
	if isDue || retryAt != (time.Time{}) || len(pending) > 0 {
		run.Outcomes = append(run.Outcomes, PolicyOutcome{Policy: p.Name, Disk: disk})
	}
	l.pol.mu.Lock()
	st = l.statusLocked(p.Name, disk)
	if st.Failures > 0 {
		l.log.Info("policy run succeeded again", "policy", p.Name, "disk", disk, "after_failures", st.Failures)
	}
	st.Failures, st.RetryAt = 0, time.Time{}
	l.saveStatusLocked()
	l.pol.mu.Unlock()
}

// copyPending copies the pending snapshots of a policy's disk to its
// region (those deleted locally meanwhile are dropped) and applies the
// policy's remote retention to its copies there.
func (l *Local) copyPending(ctx context.Context, p *Policy, disk string, pending []string, now time.Time, run *PolicyRun) error {
	for len(pending) > 0 {
		name := pending[0]
		if _, err := l.store.GetSnapshot(name); errors.Is(err, rowstore.ErrNotFound) {
			pending = pending[1:]
			l.setPending(p.Name, disk, pending)
			continue
		}
		// Not behind another sync of this daemon to the region (an
		// hour-long sync command, the hourly job): the scheduler is one
		// loop, and waiting here held every other policy's snapshots back
		// as long (TestRev15trialPolicyCopyBehindLongSync). The copy stays
		// pending (policy status shows it; the scheduler tries again every
		// tick, so it is logged at debug level); a later run ships it.
		if _, err := l.sync(ctx, SyncRequest{Region: p.CopyTo, Snapshot: name}, nil, false); errors.Is(err, errSyncBusy) {
			l.log.Debug("policy: copy left pending: another sync to the region is running", "policy", p.Name, "disk", disk, "snapshot", name, "region", p.CopyTo)
			return nil
		} else if err != nil {
			return err
		}
		run.Copied = append(run.Copied, name)
		pending = pending[1:]
		l.setPending(p.Name, disk, pending)
	}
	if p.CopyRetain.IsZero() {
		return nil
	}
	remote, err := l.RemoteSnapshots(ctx, p.CopyTo)
	if err != nil {
		return err
	}
	var snaps []policy.Snap
	for _, r := range remote {
		if policyOwnsRemote(p.Name, disk, r) {
			snaps = append(snaps, policy.Snap{Name: r.Name, Created: r.Created, Kind: r.Kind, Policy: p.Name})
		}
	}
	var drop []string
	for _, e := range policy.Expired(snaps, p.Name, p.CopyRetain, now) {
		drop = append(drop, e.Name)
	}
	if len(drop) == 0 {
		return nil
	}
	m, err := l.manager()
	if err != nil {
		return err
	}
	st, err := m.Prune(ctx, p.CopyTo, replicate.PruneOptions{Only: drop})
	l.refresh(context.WithoutCancel(ctx), m, p.CopyTo)
	if err != nil {
		return err
	}
	l.log.Info("policy: remote copies expired", "policy", p.Name, "region", p.CopyTo, "snapshots", st.Deleted)
	return nil
}

func (l *Local) setPending(pol, disk string, pending []string) {
	l.pol.mu.Lock()
	l.statusLocked(pol, disk).CopyPending = slices.Clone(pending)
	l.saveStatusLocked()
	l.pol.mu.Unlock()
}

// PolicyFailures lists the failing policy runs (policy info shows them per
// disk; snapshot list prints them after the list).
func (l *Local) policyFailures() []PolicyFailure {
	l.pol.mu.Lock()
	defer l.pol.mu.Unlock()
	if !l.pol.loaded {
		l.statusLocked("", "")
		delete(l.pol.status, "")
	}
	var out []PolicyFailure
	for pol, m := range l.pol.status {
		for disk, st := range m {
			if st.Failures > 0 {
				out = append(out, PolicyFailure{Policy: pol, Disk: disk, Failures: st.Failures, Error: st.LastError, At: st.LastErrorAt, RetryAt: st.RetryAt})
			}
		}
	}
	slices.SortFunc(out, func(a, b PolicyFailure) int { return strings.Compare(a.Policy+"/"+a.Disk, b.Policy+"/"+b.Disk) })
	return out
}

// PolicyFailure is a policy whose last run on a disk failed.
type PolicyFailure struct {
	Policy   string    `json:"policy"`
	Disk     string    `json:"disk"`
	Failures int       `json:"failures"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
}

// countOf counts policy's automatic snapshots among snaps.
func countOf(snaps []policy.Snap, pol string) int {
	n := 0
	for _, s := range snaps {
		if s.Kind == policy.KindAutomatic && s.Policy == pol {
			n++
		}
	}
	return n
}

// policySnapshotName is the name of policy pol's snapshot of disk due at
// instant due, and whether that snapshot exists already (taken before: the
// status was lost). The name is policy.SnapshotName's unless a snapshot
// that is not this policy's automatic snapshot of this disk has it (policy
// "a" on disk "b-c" and policy "a-b" on disk "c" both give "a-b-c-<time>",
// and a manual snapshot may have any name): then "-2", "-3" ... are
// appended. Trial 8: the name's existence alone was taken for "taken
// before", and the second policy's disk silently got no snapshot.
func (l *Local) policySnapshotName(pol, disk string, due time.Time) (string, bool, error) {
	base := policy.SnapshotName(pol, disk, due)
	for i := 1; i <= 100; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if err := rowstore.ValidateName("snapshot", name); err != nil {
			if i == 1 { // too long already (a policy applied before applyDisk checked it)
				return "", false, err
			}
			return "", false, fmt.Errorf("%s is taken by another snapshot, and %w", base, err)
		}
		si, err := l.store.GetSnapshot(name)
		if errors.Is(err, rowstore.ErrNotFound) {
			return name, false, nil
		}
		if err != nil {
			return "", false, err
		}
		if si.Policy == pol && si.Kind == policy.KindAutomatic && len(si.Disks) == 1 && hasDisk(si, disk) {
			return name, true, nil
		}
	}
	return "", false, fmt.Errorf("%w: %s and 99 names after it are taken by other snapshots", rowstore.ErrExists, base)
}

// policyOwnsRemote reports whether a region snapshot is a copy of policy
// pol's automatic snapshot of disk, taken by this host: "<pol>-<disk>-"
// followed by the time (and a "-N" that policySnapshotName appended),
// holding that disk alone. Trial 8: a prefix match alone let the remote
// retention of policy "a" on disk "b" count, and prune, its copies of disk
// "b-c" ("a-b-c-<time>") and policy "a-b"'s copies of disk "c".
func policyOwnsRemote(pol, disk string, r RemoteSnapshot) bool {
	const stamp = "20060102-1504" // policy.SnapshotName's time
	if !r.Mine || r.Kind != policy.KindAutomatic || len(r.Disks) != 1 || r.Disks[0].Name != disk {
		return false
	}
	rest, ok := strings.CutPrefix(r.Name, pol+"-"+disk+"-")
	if !ok || len(rest) < len(stamp) {
		return false
	}
	if _, err := time.Parse(stamp, rest[:len(stamp)]); err != nil {
		return false
	}
	if rest = rest[len(stamp):]; rest == "" {
		return true
	}
	n, ok := strings.CutPrefix(rest, "-")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}
