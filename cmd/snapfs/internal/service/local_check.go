package service

import (
	"context"
	"fmt"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// checkProgress turns the engine's check progress into events of op
// "store-check" (the CLI's progress bar and JSON lines).
func checkProgress(p Progress) func(rowstore.CheckProgress) {
	if p == nil {
		return nil
	}
	return func(c rowstore.CheckProgress) {
		p(replicate.Event{Type: replicate.EventBlocks, Op: "store-check", Disk: c.Phase, Blocks: c.Done, BlocksTotal: c.Total, Bytes: c.Bytes})
	}
}

// CheckStore implements Service.
func (l *Local) CheckStore(ctx context.Context, r CheckStoreRequest, progress Progress) (StoreCheckReport, error) {
	if r.MaxDuration < 0 {
		return StoreCheckReport{}, fmt.Errorf("%w: negative --max-duration", rowstore.ErrInvalid)
	}
	if progress != nil {
		progress(replicate.Event{Type: replicate.EventStart, Op: "store-check"})
	}
	rep, err := l.store.Check(ctx, rowstore.CheckOptions{ReadData: r.ReadData, MaxDuration: r.MaxDuration, Progress: checkProgress(progress)})
	if progress != nil {
		e := replicate.Event{Type: replicate.EventDone, Op: "store-check"}
		if err != nil {
			e.Err = err.Error()
		}
		progress(e)
	}
	if rep.Problems == nil {
		rep.Problems = []rowstore.CheckProblem{}
	}
	return rep, err
}

// RepairFromRegion implements Service.
func (l *Local) RepairFromRegion(ctx context.Context, region string, progress Progress) (StoreRepairReport, error) {
	if err := rowstore.ValidateName("region", region); err != nil {
		return StoreRepairReport{}, err
	}
	m, err := l.manager()
	if err != nil {
		return StoreRepairReport{}, err
	}
	src, release, err := m.BlockSource(ctx, region)
	if err != nil {
		return StoreRepairReport{}, err
	}
	defer release()
	if progress != nil {
		progress(replicate.Event{Type: replicate.EventStart, Op: "store-repair", Region: region})
	}
	rep, err := l.store.Repair(ctx, src, checkProgress(progress))
	if progress != nil {
		progress(replicate.Event{Type: replicate.EventDone, Op: "store-repair", Region: region})
	}
	if rep.Unrepaired == nil {
		rep.Unrepaired = []rowstore.CheckProblem{}
	}
	if rep.Checked.Problems == nil {
		rep.Checked.Problems = []rowstore.CheckProblem{}
	}
	if rep.Repaired > 0 {
		l.namesChanged()
	}
	return rep, err
}
