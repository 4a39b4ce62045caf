package replicate

// EventType is the kind of a progress event.
type EventType string

// Event types, in the order a job emits them.
const (
	EventStart    EventType = "start"    // a job began; Op names it
	EventSnapshot EventType = "snapshot" // a snapshot (and disk) begins
	EventPack     EventType = "pack"     // a pack was written or read
	EventBlocks   EventType = "blocks"   // block counts moved on
	EventDone     EventType = "done"     // the job ended (Err set if it failed)
)

// Event is one progress report. The CLI renders events as a progress bar
// on a terminal or as one JSON object per line.
type Event struct {
	Type        EventType `json:"type"`
	Op          string    `json:"op"` // sync, restore, check, repair, prune
	Region      string    `json:"region"`
	Snapshot    string    `json:"snapshot,omitempty"`
	Disk        string    `json:"disk,omitempty"`
	Pack        string    `json:"pack,omitempty"`
	Blocks      int64     `json:"blocks,omitempty"`       // blocks done so far in this snapshot/disk
	BlocksTotal int64     `json:"blocks_total,omitempty"` // blocks to do, when known
	Bytes       int64     `json:"bytes,omitempty"`        // bytes moved so far
	Err         string    `json:"error,omitempty"`
}

// Progress receives events. Implementations must be safe for concurrent
// use and return quickly.
type Progress interface {
	Event(Event)
}

// NoProgress discards events.
type NoProgress struct{}

// Event implements Progress.
func (NoProgress) Event(Event) {}

// ProgressFunc adapts a function to Progress.
type ProgressFunc func(Event)

// Event implements Progress.
func (f ProgressFunc) Event(e Event) { f(e) }

func orNoProgress(p Progress) Progress {
	if p == nil {
		return NoProgress{}
	}
	return p
}
