package replicate

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// HostFile is the name, in a store's directory, of the file that holds the
// store's host identity (see Host).
const HostFile = "host.json"

// hostVersion is the version of HostFile's format written (1, without a
// seat, is still read).
const hostVersion = 2

// Host is the identity of a host in a region: one local snapfs store. It
// is made once (at init, or lazily for a store that predates hosts) and
// bound to the store's seat: the machine and the store directory it was
// made in. A copy of the store (cp -a, a backup restored elsewhere, a VM
// cloned with a new machine id) is not the same host: EnsureHost gives it
// a new identity and keeps the old one in Previous (see the package doc,
// "Hosts"). Every remote snapshot a host copies records its id.
//
// HostFile layout (JSON, written with vfs.WriteFile):
//
//	{"version": 2, "id": "<32 hex digits>", "name": "<host name>",
//	 "created": "<RFC 3339>",
//	 "seat": {"machine_id": "<hex>", "inode": N, "birth_ns": N},
//	 "previous": ["<32 hex digits>", ...],
//	 "checksum": "<SHA-256 hex of version|id|name|created|seat|previous>"}
//
// Version 1 has no seat and no previous; its checksum covers
// version|id|name|created. A version 1 file is bound to the seat it is
// first opened in (and rewritten as version 2).
type Host struct {
	ID      format.HostID
	Name    string
	Created time.Time
	// Seat is where the identity was made (zero: not yet bound).
	Seat Seat
	// Previous are the identities of the store this one was copied from,
	// oldest first: their snapshots stay in the region, restorable
	// (--host <id>), and are pruned by no host unless asked for.
	Previous []format.HostID
}

// Seat is the place of a store: the machine (/etc/machine-id) and the
// store directory's inode and birth time (statx). `mv` within a file
// system keeps all three; a copy of the directory gets a new inode and
// birth time; a machine cloned from an image with a fresh machine id a new
// machine id.
type Seat struct {
	MachineID string `json:"machine_id"`
	Inode     uint64 `json:"inode"`
	BirthNs   int64  `json:"birth_ns,omitempty"` // 0: the file system has no birth time
}

// IsZero reports whether s is the zero Seat (an identity not yet bound).
func (s Seat) IsZero() bool { return s == Seat{} }

// same reports whether s and o are one seat (a birth time counts only when
// both have one).
func (s Seat) same(o Seat) bool {
	return s.MachineID == o.MachineID && s.Inode == o.Inode && (s.BirthNs == 0 || o.BirthNs == 0 || s.BirthNs == o.BirthNs)
}

func (s Seat) String() string {
	return fmt.Sprintf("machine %s, directory inode %d, born %d", s.MachineID, s.Inode, s.BirthNs)
}

// machineIDFiles are read, in order, for the machine id.
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

// SeatOf returns the seat of the store in storeDir on this machine.
func SeatOf(storeDir string) (Seat, error) {
	var s Seat
	for _, p := range machineIDFiles {
		if b, err := os.ReadFile(p); err == nil {
			if s.MachineID = strings.TrimSpace(string(b)); s.MachineID != "" {
				break
			}
		}
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, storeDir, 0, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		return Seat{}, fmt.Errorf("host identity: statx %s: %w", storeDir, err)
	}
	s.Inode = stx.Ino
	if stx.Mask&unix.STATX_BTIME != 0 {
		s.BirthNs = stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec)
	}
	return s, nil
}

type hostJSON struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Seat     *Seat     `json:"seat,omitempty"`
	Previous []string  `json:"previous,omitempty"`
	Checksum string    `json:"checksum"`
}

func hostSum(j *hostJSON) string {
	b := fmt.Appendf(nil, "%d|%s|%s|%s", j.Version, j.ID, j.Name, j.Created.UTC().Format(time.RFC3339Nano))
	if j.Version >= 2 {
		var st Seat
		if j.Seat != nil {
			st = *j.Seat
		}
		b = fmt.Appendf(b, "|%s|%d|%d|%s", st.MachineID, st.Inode, st.BirthNs, strings.Join(j.Previous, ","))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// EncodeHost returns HostFile's bytes for h.
func EncodeHost(h Host) []byte {
	j := hostJSON{Version: hostVersion, ID: hex.EncodeToString(h.ID[:]), Name: h.Name, Created: h.Created.UTC()}
	if !h.Seat.IsZero() {
		st := h.Seat
		j.Seat = &st
	}
	for _, p := range h.Previous {
		j.Previous = append(j.Previous, hex.EncodeToString(p[:]))
	}
	j.Checksum = hostSum(&j)
	b, _ := json.MarshalIndent(j, "", "  ")
	return append(b, '\n')
}

func decodeHostID(s string) (format.HostID, error) {
	var id format.HostID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: %s: bad id %q", ErrCorrupt, HostFile, s)
	}
	copy(id[:], b)
	if id.IsZero() {
		return id, fmt.Errorf("%w: %s: zero id", ErrCorrupt, HostFile)
	}
	return id, nil
}

// DecodeHost parses HostFile's bytes; damage is an error wrapping
// ErrCorrupt, a newer version one wrapping format.ErrUnsupportedVersion.
func DecodeHost(b []byte) (Host, error) {
	var j hostJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Host{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, HostFile, err)
	}
	if j.Version < 1 || j.Version > hostVersion {
		return Host{}, fmt.Errorf("%w: %s version %d", format.ErrUnsupportedVersion, HostFile, j.Version)
	}
	if j.Version == 1 && (j.Seat != nil || j.Previous != nil) {
		return Host{}, fmt.Errorf("%w: %s: version 1 with a seat", ErrCorrupt, HostFile)
	}
	if j.Checksum != hostSum(&j) {
		return Host{}, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, HostFile)
	}
	id, err := decodeHostID(j.ID)
	if err != nil {
		return Host{}, err
	}
	h := Host{ID: id, Name: j.Name, Created: j.Created}
	if j.Seat != nil {
		h.Seat = *j.Seat
	}
	for _, p := range j.Previous {
		pid, err := decodeHostID(p)
		if err != nil {
			return Host{}, err
		}
		h.Previous = append(h.Previous, pid)
	}
	return h, nil
}

// LoadHost reads the host identity of the store in storeDir, as it is
// recorded (EnsureHost checks its seat); a store without one is an error
// wrapping ErrNotFound.
func LoadHost(storeDir string) (Host, error) {
	b, err := os.ReadFile(filepath.Join(storeDir, HostFile))
	if errors.Is(err, os.ErrNotExist) {
		return Host{}, fmt.Errorf("%w: %s has no host identity", ErrNotFound, storeDir)
	}
	if err != nil {
		return Host{}, fmt.Errorf("host identity: %w", err)
	}
	return DecodeHost(b)
}

// EnsureHost returns the host identity of the store in storeDir, making
// one (a random id and name, default: the machine's host name) if it has
// none. snapfs init calls it; replicate.New calls it at every open. An
// identity made for another seat (the store was copied, or restored onto
// another machine: see Seat) is replaced by a new one with the same name,
// the old id kept in Previous, and a warning logged: the copy's prunes
// never touch the original's snapshots. An identity of version 1 (no
// seat) is bound to the current seat.
func EnsureHost(storeDir, name string) (Host, error) {
	return ensureHost(storeDir, name, slog.Default())
}

func ensureHost(storeDir, name string, log *slog.Logger) (Host, error) {
	seat, err := SeatOf(storeDir)
	if err != nil {
		return Host{}, err
	}
	h, err := LoadHost(storeDir)
	if err == nil && !h.Seat.IsZero() && h.Seat.same(seat) {
		return h, nil
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return h, err
	}
	// Changed under the store directory's lock, looked at again: of two
	// processes opening a copied store, one makes its new identity.
	d, err := os.Open(storeDir)
	if err != nil {
		return Host{}, fmt.Errorf("host identity: %w", err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return Host{}, fmt.Errorf("host identity: lock %s: %w", storeDir, err)
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN) //nolint:errcheck // closing unlocks too
	h, err = LoadHost(storeDir)
	switch {
	case err == nil && !h.Seat.IsZero() && h.Seat.same(seat):
		return h, nil
	case err == nil && h.Seat.IsZero():
		h.Seat = seat // made before seats: bound to where it is now
		log.Info("host identity bound to this store's seat", "store", storeDir, "host", h.Name, "id", h.ID.String(), "seat", seat.String())
	case err == nil:
		old := h
		h = Host{Name: old.Name, Created: time.Now().UTC(), Seat: seat, Previous: append(slices.Clone(old.Previous), old.ID)}
		if _, err := rand.Read(h.ID[:]); err != nil {
			return Host{}, fmt.Errorf("host id: %w", err)
		}
		log.Warn("this store is a copy of another (copied, restored from a backup, or its machine cloned): it takes a new host identity, so that it never prunes the original's snapshots in shared regions; the old identity's snapshots stay in the regions, restorable with --host "+old.ID.String(),
			"store", storeDir, "host", h.Name, "old_id", old.ID.String(), "new_id", h.ID.String(), "old_seat", old.Seat.String(), "seat", seat.String())
	case errors.Is(err, ErrNotFound):
		if name == "" {
			name, _ = os.Hostname()
		}
		if name = strings.TrimSpace(name); name == "" {
			name = "localhost"
		}
		h = Host{Name: name, Created: time.Now().UTC(), Seat: seat}
		if _, err := rand.Read(h.ID[:]); err != nil {
			return Host{}, fmt.Errorf("host id: %w", err)
		}
	default:
		return h, err
	}
	if err := vfs.WriteFile(vfs.Default, filepath.Join(storeDir, HostFile), EncodeHost(h), 0o600); err != nil {
		if old, lerr := LoadHost(storeDir); lerr == nil && old.ID == h.ID {
			// Only the binding of a version 1 identity was not written (a
			// read-only store): the identity stands, bound next time.
			log.Warn("host identity not bound to this store's seat (not written)", "store", storeDir, "err", err)
			return old, nil
		}
		return Host{}, fmt.Errorf("host identity: %w", err)
	}
	return h, nil
}
