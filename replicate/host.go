package replicate

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// HostFile is the name, in a store's directory, of the file that holds the
// store's host identity (see Host).
const HostFile = "host.json"

// hostVersion is the version of HostFile's format.
const hostVersion = 1

// Host is the identity of a host in a region: one local snapfs store. It
// is made once (at init, or lazily for a store that predates hosts) and
// never changes; every remote snapshot a host copies records it.
//
// HostFile layout (JSON, written with vfs.WriteFile):
//
//	{"version": 1, "id": "<32 hex digits>", "name": "<host name>",
//	 "created": "<RFC 3339>", "checksum": "<SHA-256 hex of version|id|name|created>"}
type Host struct {
	ID      format.HostID
	Name    string
	Created time.Time
}

type hostJSON struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Checksum string    `json:"checksum"`
}

func hostSum(v int, id, name string, created time.Time) string {
	s := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%s", v, id, name, created.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(s[:])
}

// EncodeHost returns HostFile's bytes for h.
func EncodeHost(h Host) []byte {
	id := hex.EncodeToString(h.ID[:])
	b, _ := json.MarshalIndent(hostJSON{Version: hostVersion, ID: id, Name: h.Name, Created: h.Created.UTC(),
		Checksum: hostSum(hostVersion, id, h.Name, h.Created)}, "", "  ")
	return append(b, '\n')
}

// DecodeHost parses HostFile's bytes; damage is an error wrapping
// ErrCorrupt, a newer version one wrapping format.ErrUnsupportedVersion.
func DecodeHost(b []byte) (Host, error) {
	var j hostJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Host{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, HostFile, err)
	}
	if j.Version != hostVersion {
		return Host{}, fmt.Errorf("%w: %s version %d", format.ErrUnsupportedVersion, HostFile, j.Version)
	}
	if j.Checksum != hostSum(j.Version, j.ID, j.Name, j.Created) {
		return Host{}, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, HostFile)
	}
	idb, err := hex.DecodeString(j.ID)
	if err != nil || len(idb) != 16 {
		return Host{}, fmt.Errorf("%w: %s: bad id %q", ErrCorrupt, HostFile, j.ID)
	}
	h := Host{Name: j.Name, Created: j.Created}
	copy(h.ID[:], idb)
	if h.ID.IsZero() {
		return Host{}, fmt.Errorf("%w: %s: zero id", ErrCorrupt, HostFile)
	}
	return h, nil
}

// LoadHost reads the host identity of the store in storeDir; a store
// without one is an error wrapping ErrNotFound.
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
// none. snapfs init calls it; replicate.New calls it for stores that
// predate hosts.
func EnsureHost(storeDir, name string) (Host, error) {
	h, err := LoadHost(storeDir)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return h, err
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	if name = strings.TrimSpace(name); name == "" {
		name = "localhost"
	}
	h = Host{Name: name, Created: time.Now().UTC()}
	if _, err := rand.Read(h.ID[:]); err != nil {
		return Host{}, fmt.Errorf("host id: %w", err)
	}
	if err := vfs.WriteFile(vfs.Default, filepath.Join(storeDir, HostFile), EncodeHost(h), 0o600); err != nil {
		return Host{}, fmt.Errorf("host identity: %w", err)
	}
	return h, nil
}
