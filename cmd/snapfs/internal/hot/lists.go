package hot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
)

// printList prints a listing answer (a JSON array): one JSON line of type
// typ per item, each the daemon's object, or a table of the rows row makes
// from the items decoded as T.
func printList[T any](p *Printer, method, typ string, raw json.RawMessage, header []string, row func(T) []string) error {
	var items []json.RawMessage
	if err := decode(method, raw, &items); err != nil {
		return err
	}
	if p.JSON {
		for _, it := range items {
			if err := p.Object(typ, it); err != nil {
				return err
			}
		}
		return nil
	}
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		var v T
		if err := decode(method, it, &v); err != nil {
			return err
		}
		rows = append(rows, row(v))
	}
	return p.Table(header, rows)
}

func diskList() *cli.Command { return &cli.Command{Name: "list", Usage: "list disks"} }

func diskListOp(c *cli.Context) (Op, error) {
	if _, err := Args(c); err != nil {
		return Op{}, err
	}
	return Op{Method: "ListDisks", ReadOnly: true, Req: struct{}{}, Print: func(p *Printer, raw json.RawMessage) error {
		type disk struct {
			Name      string `json:"name"`
			Size      int64  `json:"size"`
			BlockSize int    `json:"block_size"`
			Allocated int64  `json:"allocated"`
			Origin    string `json:"origin"`
			Open      int    `json:"open_handles"`
			Encrypted bool   `json:"encrypted"`
			Locked    bool   `json:"locked"`
		}
		return printList(p, "ListDisks", "disk", raw, []string{"NAME", "SIZE", "ALLOCATED", "BLOCK", "OPEN", "ORIGIN", "ENCRYPTION"}, func(d disk) []string {
			return []string{d.Name, Size(d.Size), Size(d.Allocated), Size(int64(d.BlockSize)), strconv.Itoa(d.Open), OrDash(d.Origin), Encryption(d.Encrypted, d.Locked)}
		})
	}}, nil
}

// Encryption is a disk's encryption state in listings.
func Encryption(encrypted, locked bool) string {
	switch {
	case !encrypted:
		return "-"
	case locked:
		return "locked"
	}
	return "unlocked"
}

func imageList() *cli.Command { return &cli.Command{Name: "list", Usage: "list images"} }

func imageListOp(c *cli.Context) (Op, error) {
	if _, err := Args(c); err != nil {
		return Op{}, err
	}
	return Op{Method: "ListImages", ReadOnly: true, Req: struct{}{}, Print: func(p *Printer, raw json.RawMessage) error {
		type image struct {
			Name     string    `json:"name"`
			Size     int64     `json:"size"`
			Snapshot string    `json:"snapshot"`
			Disk     string    `json:"disk"`
			Created  time.Time `json:"created"`
		}
		return printList(p, "ListImages", "image", raw, []string{"NAME", "SIZE", "SNAPSHOT", "DISK", "CREATED"}, func(im image) []string {
			return []string{im.Name, Size(im.Size), im.Snapshot, im.Disk, When(im.Created)}
		})
	}}, nil
}

func snapshotList() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list snapshots, oldest first",
		Flags: []cli.Flag{&cli.StringFlag{Name: "disk", Usage: "only snapshots holding this disk"}},
	}
}

// snapshotListOp lists the snapshots, then the failures of the policies
// that take them (a failed ListPolicies leaves them out: the snapshot list
// stands on its own).
func snapshotListOp(c *cli.Context) (Op, error) {
	if _, err := Args(c); err != nil {
		return Op{}, err
	}
	disk := c.String("disk")
	return Op{Method: "ListSnapshots", ReadOnly: true, Req: wire.ListSnapshotsRequest{Disk: disk},
		More: []Call{{Method: "ListPolicies", Req: struct{}{}, Optional: true}},
		Print: func(p *Printer, raw json.RawMessage) error {
			var answers []json.RawMessage
			if err := decode("ListSnapshots", raw, &answers); err != nil {
				return err
			}
			if len(answers) != 2 {
				return &wire.Error{Code: "incompatible", Message: fmt.Sprintf("bad answer to ListSnapshots: %d parts", len(answers))}
			}
			type snapshot struct {
				Name    string    `json:"name"`
				Created time.Time `json:"created"`
				Kind    string    `json:"kind"`
				State   string    `json:"state"`
				Disks   []struct {
					Name      string `json:"name"`
					Allocated int64  `json:"allocated"`
				} `json:"disks"`
			}
			if err := printList(p, "ListSnapshots", "snapshot", answers[0], []string{"NAME", "CREATED", "KIND", "STATE", "DISKS", "ALLOCATED"}, func(s snapshot) []string {
				var names []string
				var alloc int64
				for _, d := range s.Disks {
					names = append(names, d.Name)
					alloc += d.Allocated
				}
				return []string{s.Name, When(s.Created), s.Kind, s.State, strings.Join(names, ","), Size(alloc)}
			}); err != nil {
				return err
			}
			return printPolicyFailures(p, answers[1], disk)
		}}, nil
}

// printPolicyFailures prints the failing runs of the policies of a
// ListPolicies answer (of disk, when not empty), after a snapshot list.
func printPolicyFailures(p *Printer, raw json.RawMessage, disk string) error {
	var ps []struct {
		Name   string            `json:"name"`
		Status []json.RawMessage `json:"status"`
	}
	if json.Unmarshal(raw, &ps) != nil {
		return nil // the snapshot list stands on its own
	}
	for _, pol := range ps {
		for _, st := range pol.Status {
			var s struct {
				Disk        string    `json:"disk"`
				Failures    int       `json:"failures"`
				LastError   string    `json:"last_error"`
				LastErrorAt time.Time `json:"last_error_at"`
				RetryAt     time.Time `json:"retry_at"`
			}
			if json.Unmarshal(st, &s) != nil || s.Failures == 0 || (disk != "" && s.Disk != disk) {
				continue
			}
			if p.JSON {
				// {"policy": NAME, ...the disk's status}: the policy's name
				// leads the status object's fields.
				name, _ := json.Marshal(pol.Name)
				obj := append([]byte(`{"policy":`), name...)
				if body := bytes.TrimSpace(st); len(body) > 2 {
					obj = append(append(obj, ','), body[1:]...)
				} else {
					obj = append(obj, '}')
				}
				if err := p.Object("policy_failure", json.RawMessage(obj)); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(p.W, "policy %s on disk %s: %d failed run(s), last at %s: %s (retried at %s)\n", pol.Name, s.Disk, s.Failures, When(s.LastErrorAt), s.LastError, When(s.RetryAt))
		}
	}
	return nil
}
