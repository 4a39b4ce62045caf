package hot

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
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
	return Op{Method: "ListDisks", Req: struct{}{}, Print: func(p *Printer, raw json.RawMessage) error {
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
	return Op{Method: "ListImages", Req: struct{}{}, Print: func(p *Printer, raw json.RawMessage) error {
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
