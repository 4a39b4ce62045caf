package daemon

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/snapfs/snapfs/rowstore"
)

// unlockKeys tries the mount's key files (Config.Keys) on every encrypted
// disk of the open store, before anything is mounted. When the store has
// locked encrypted disks and no key file opens any of them, the mount
// fails with ErrWrongKey (exit 13): the key given is evidently not the
// one the user meant, and a mount whose encrypted disks all refuse to open
// would say "mounted" over it (local trial 10). Otherwise each key file
// that opens nothing is a warning, returned for the command to print (and
// logged): in the background the daemon's log is not where a user looks.
func unlockKeys(st *rowstore.Store, keys []*rowstore.Key, log *slog.Logger) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	res, err := st.UnlockAll(keys)
	if err != nil {
		return nil, fmt.Errorf("unlock encrypted disks: %w", err)
	}
	disks, err := st.ListDisks()
	if err != nil {
		return nil, err
	}
	var locked []string
	encrypted := 0
	for _, d := range disks {
		if d.Encrypted {
			encrypted++
			if d.Locked {
				locked = append(locked, d.Name)
			}
		}
	}
	stillLocked := "they stay locked: " + names(locked)
	if len(locked) == 0 {
		stillLocked = "every encrypted disk is open"
	}
	if encrypted == 0 {
		stillLocked = "the store has no encrypted disk"
	}
	if len(res.Unlocked) == 0 && len(locked) > 0 {
		return nil, fmt.Errorf("%w: %s open%s none of the store's encrypted disks (%s); nothing was mounted. "+
			"Give the disks' key file, or mount without --key-file (the encrypted disks then stay locked until disk unlock)",
			rowstore.ErrWrongKey, keyNames(res.Unused), plural(len(res.Unused)), names(locked))
	}
	var warnings []string
	for _, src := range res.Unused {
		log.Warn("key file unlocks no encrypted disk", "key_file", src)
		warnings = append(warnings, fmt.Sprintf("key file %s opens no encrypted disk (%s)", src, stillLocked))
	}
	for _, src := range res.Unlocked {
		log.Info("key file unlocked encrypted disks", "key_file", src)
	}
	if len(locked) > 0 {
		log.Info("encrypted disks stay locked (no key file given opens them)", "disks", locked)
	}
	return warnings, nil
}

// names lists at most 5 names, then how many more.
func names(ns []string) string {
	if len(ns) > 5 {
		return strings.Join(ns[:5], ", ") + fmt.Sprintf(" and %d more", len(ns)-5)
	}
	return strings.Join(ns, ", ")
}

func keyNames(srcs []string) string {
	if len(srcs) == 1 {
		return "key file " + srcs[0]
	}
	return "key files " + strings.Join(srcs, ", ")
}

// plural is the verb ending for n subjects ("opens" or "open").
func plural(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}
