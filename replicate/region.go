package replicate

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound: no such region, remote snapshot or disk.
	ErrNotFound = errors.New("replicate: not found")
	// ErrExists: the region (or target disk) already exists.
	ErrExists = errors.New("replicate: already exists")
	// ErrInvalid: a bad argument.
	ErrInvalid = errors.New("replicate: invalid argument")
	// ErrWrongKey: the key file does not open the region.
	ErrWrongKey = format.ErrWrongKey
	// ErrMismatch: the stores hold a region that differs from the
	// configuration (k, m, region id or store position).
	ErrMismatch = errors.New("replicate: stores do not match the region configuration")
	// ErrUnavailable: a store needed for the operation could not be used.
	ErrUnavailable = errors.New("replicate: store unavailable")
	// ErrNoMarker: a store holds no region marker (its config object,
	// written in every store when the region is created): an unmounted
	// file system or an emptied bucket. Nothing is written to such a store.
	ErrNoMarker = errors.New("replicate: store holds no region marker")
	// ErrTooFewShards: fewer than k usable shards of a pack remain.
	ErrTooFewShards = errors.New("replicate: too few usable shards")
	// ErrCorrupt: a region object failed verification.
	ErrCorrupt = format.ErrCorrupt
	// ErrConflict: the region holds a different snapshot of the same name,
	// or it was changed by a concurrent operation (Prune while a copying
	// marker is fresh; a Sync whose parent manifest or deduplicated packs
	// were deleted while it ran).
	ErrConflict = errors.New("replicate: conflict with the region's contents")
)

// DefaultPackSize is the target plaintext size of a pack. Sync's memory
// is about 8 times this (see pipeline.go), restore's about 5 times: 8
// MiB keeps both well inside the daemon's soft memory limit (128 MiB; a
// heap beyond it makes the collector run without pause), while a 4+2
// pack's shards (2 MiB) stay large enough for a store's throughput.
const DefaultPackSize = 8 << 20

// Options configure a Manager. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// PackSize is the target size of a pack before compression; default
	// DefaultPackSize.
	PackSize int
	// OpenStore opens store i of a region. Default: store.Open wrapped in
	// store.DefaultRetry. Tests inject faults here.
	OpenStore func(ctx context.Context, i int, url string, opts store.Options) (store.Store, error)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Workers bounds parallel pack reads in restore, check and repair;
	// default 4.
	Workers int
	// LockStale, LockRefresh: a region lock not refreshed for LockStale is
	// stale; holders refresh every LockRefresh (defaults DefaultLockStale,
	// DefaultLockRefresh), and a holder that went LockStale/2 without a
	// refresh (its lease ran out) stops with ErrConflict.
	LockStale, LockRefresh time.Duration
	// LockWait is how long an operation retries while another holds the
	// region (default 0: fail at once with ErrLocked).
	LockWait time.Duration
	// HostName names this host when its identity is first made (default:
	// the machine's host name). An existing identity is kept.
	HostName string
}

// Manager runs region operations for one local store. It is safe for
// concurrent use, but two operations on one region must not overlap (the
// sync job takes a lock).
type Manager struct {
	dir  string
	host Host
	rs   *rowstore.Store
	opts Options
	log  *slog.Logger
	enc  *zstd.Encoder
	dec  *zstd.Decoder
	mu   sync.Mutex // serialises region config files
	// covers: packs that hold each checked manifest disk's chunks
	// (cover.go), so an incremental's parent check costs O(packs).
	covers covers
	// chunkCache: each region's decoded pack indexes and chunk set, kept
	// between operations and checked against the region's listing
	// (chunkcache.go).
	chunkCache chunkCache
	// clocks: each region's last clockView (region name to *clockView;
	// clock.go).
	clocks sync.Map
}

// New returns a Manager for the local store rs whose directory is
// storeDir. Region configuration lives in storeDir/regions.
func New(storeDir string, rs *rowstore.Store, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PackSize <= 0 {
		opts.PackSize = DefaultPackSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.LockStale <= 0 {
		opts.LockStale = DefaultLockStale
	}
	if opts.LockRefresh <= 0 {
		opts.LockRefresh = min(DefaultLockRefresh, opts.LockStale/4)
	}
	if opts.OpenStore == nil {
		opts.OpenStore = func(ctx context.Context, _ int, url string, so store.Options) (store.Store, error) {
			s, err := store.Open(ctx, url, so)
			if err != nil {
				return nil, err
			}
			return store.Wrap(s, store.WrapOptions{Retry: store.DefaultRetry(), Logger: so.Logger}), nil
		}
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(format.MaxChunk*2))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	host, err := ensureHost(storeDir, opts.HostName, opts.Logger)
	if err != nil {
		return nil, err
	}
	m := &Manager{dir: storeDir, host: host, rs: rs, opts: opts, log: opts.Logger, enc: enc, dec: dec}
	if rs != nil {
		rs.CleanTempDisks() // a killed restore's temporary disk
	}
	return m, nil
}

// Host is the identity of this Manager's host.
func (m *Manager) Host() Host { return m.host }

// Close releases the Manager's codecs.
func (m *Manager) Close() error {
	m.dec.Close()
	return m.enc.Close()
}

// S3Options are the S3 settings of a region's stores (credentials come
// from the URL's user info or the standard AWS environment variables and
// are never written to the configuration file).
type S3Options struct {
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
	Insecure  bool   `json:"insecure,omitempty"`
}

// RegionConfig is a region's local configuration, kept in
// <storeDir>/regions/<name>.json. It never holds the key, only its path.
type RegionConfig struct {
	Name     string    `json:"name"`
	K        int       `json:"data"`
	M        int       `json:"parity"`
	Stores   []string  `json:"stores"`
	KeyFile  string    `json:"key_file"`
	S3       S3Options `json:"s3"`
	RegionID string    `json:"region_id,omitempty"` // set by AddRegion
	Added    time.Time `json:"added"`
	// InsecureKeyFile accepts a key file group or others may read
	// (format.ReadKeyFile refuses one by default).
	InsecureKeyFile bool `json:"insecure_key_file,omitempty"`
	// Retention of this host's snapshots in the region (see Retention);
	// zero: none, prune needs one given.
	Retention Retention `json:"retention,omitzero"`
	// Create (AddRegion only, never saved): make file:// store directories
	// that do not exist yet.
	Create bool `json:"-"`
}

// RegionInfo is a region's configuration and what AddRegion found.
type RegionInfo struct {
	RegionConfig
	Attached bool `json:"attached"` // the stores already held the region
}

func (m *Manager) regionsDir() string { return filepath.Join(m.dir, "regions") }
func (m *Manager) configPath(name string) string {
	return filepath.Join(m.regionsDir(), name+".json")
}
func (m *Manager) cacheDir(name string) string {
	return filepath.Join(m.regionsDir(), name+".cache")
}

func validRegionName(name string) error {
	if err := rowstore.ValidateName("region", name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// ListRegions lists the configured regions by name.
func (m *Manager) ListRegions() ([]RegionConfig, error) {
	ents, err := os.ReadDir(m.regionsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list regions: %w", err)
	}
	var out []RegionConfig
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		c, err := m.loadConfig(name)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// RegionInfo returns a region's configuration.
func (m *Manager) RegionInfo(name string) (RegionConfig, error) {
	if err := validRegionName(name); err != nil {
		return RegionConfig{}, err
	}
	return m.loadConfig(name)
}

// RemoveRegion forgets a region locally (its configuration and cache). It
// never deletes remote data.
func (m *Manager) RemoveRegion(name string) error {
	if err := validRegionName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.Remove(m.configPath(name)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: region %q", ErrNotFound, name)
		}
		return fmt.Errorf("remove region %q: %w", name, err)
	}
	m.chunkCache.drop(name)
	// Its stores' skews too: a region added again under this name may
	// have other stores, which must be measured, not judged by these.
	m.clocks.Delete(name)
	if err := os.RemoveAll(m.cacheDir(name)); err != nil {
		return fmt.Errorf("remove region %q cache: %w", name, err)
	}
	if err := vfs.Default.SyncDir(m.regionsDir()); err != nil {
		return fmt.Errorf("remove region %q: %w", name, err)
	}
	return nil
}

func (m *Manager) loadConfig(name string) (RegionConfig, error) {
	b, err := os.ReadFile(m.configPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return RegionConfig{}, fmt.Errorf("%w: region %q", ErrNotFound, name)
	}
	if err != nil {
		return RegionConfig{}, fmt.Errorf("region %q: %w", name, err)
	}
	var c RegionConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return RegionConfig{}, fmt.Errorf("region %q: %s: %w", name, m.configPath(name), err)
	}
	return c, nil
}

func (m *Manager) saveConfig(c RegionConfig) error {
	// Durably (the parent synced): a regions/ directory made here and
	// lost in a crash would take the acknowledged configuration with it.
	if err := vfs.MkdirAllSync(vfs.Default, m.regionsDir(), 0o700); err != nil {
		return fmt.Errorf("save region %q: %w", c.Name, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save region %q: %w", c.Name, err)
	}
	return writeFileAtomic(m.configPath(c.Name), append(b, '\n'))
}

// writeFileAtomic writes path with vfs.WriteFile (durable: a cache's
// files too, the cost is small).
func writeFileAtomic(path string, data []byte) error {
	return vfs.WriteFile(vfs.Default, path, data, 0o600)
}

func randUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func sortedKeysOf[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// region is an opened region: its stores and keys.
type region struct {
	cfg    RegionConfig
	k, m   int
	id     [16]byte
	keys   *format.Keys
	stores []store.Store
	// bad holds, per store, why it could not be used (nil: usable).
	bad []error
}

func (r *region) close() {
	for _, s := range r.stores {
		if s != nil {
			_ = s.Close()
		}
	}
}

func (r *region) n() int { return r.k + r.m }

func (m *Manager) openStores(ctx context.Context, c RegionConfig) ([]store.Store, []error) {
	// Only region add creates a missing bucket: for any other operation a
	// missing bucket is a store without the region's marker.
	stores := make([]store.Store, len(c.Stores))
	errs := forEach(len(c.Stores), func(i int) error {
		s, err := m.openStore(ctx, c, i, c.Create)
		stores[i] = s
		return err
	})
	return stores, errs
}

// openStore opens store i of c; create: make its bucket if it is missing.
func (m *Manager) openStore(ctx context.Context, c RegionConfig, i int, create bool) (store.Store, error) {
	so := store.Options{Endpoint: c.S3.Endpoint, Region: c.S3.Region, PathStyle: c.S3.PathStyle, Insecure: c.S3.Insecure, Logger: m.log, NoCreateBucket: !create}
	s, err := m.opts.OpenStore(ctx, i, c.Stores[i], so)
	if errors.Is(err, store.ErrInvalidURL) {
		return nil, fmt.Errorf("%w: store %d: %w", ErrInvalid, i, err) // a bad URL, not an unreachable store
	}
	if err != nil {
		return nil, fmt.Errorf("%w: store %d: %w", ErrUnavailable, i, err)
	}
	return s, nil
}

// reopenNew reopens store i of r, a new store that replaces a lost one
// (repair --new-store), making its bucket when it is an S3 store whose
// bucket is missing (deleted, or never made on a new account): the
// operator said it is the region's new store. r.bad[i] is what the store
// holds then (ErrNoMarker for an empty one).
func (m *Manager) reopenNew(ctx context.Context, r *region, i int) {
	if !errors.Is(r.bad[i], store.ErrMissing) || !strings.HasPrefix(r.cfg.Stores[i], "s3://") {
		return
	}
	if r.stores[i] != nil {
		_ = r.stores[i].Close()
		r.stores[i] = nil
	}
	s, err := m.openStore(ctx, r.cfg, i, true)
	if err != nil {
		r.bad[i] = err
		return
	}
	r.stores[i] = s
	cfg, err := readStoreConfig(ctx, s)
	if err == nil {
		err = r.checkConfig(cfg, i)
	}
	if err != nil {
		err = fmt.Errorf("store %d (%s): %w", i, s.Location(), err)
	}
	r.bad[i] = err
}

// openRegion opens a configured region and verifies every reachable
// store's config against the key. With needAll, every store must be
// usable; otherwise at least one.
func (m *Manager) openRegion(ctx context.Context, name string, needAll bool) (*region, error) {
	if err := validRegionName(name); err != nil {
		return nil, err
	}
	c, err := m.loadConfig(name)
	if err != nil {
		return nil, err
	}
	key, err := format.ReadKeyFile(c.KeyFile, c.InsecureKeyFile)
	if err != nil {
		return nil, fmt.Errorf("region %q: key file %s: %w", name, c.KeyFile, err)
	}
	idb, err := hex.DecodeString(c.RegionID)
	if err != nil || len(idb) != 16 {
		return nil, fmt.Errorf("%w: region %q: bad region id %q in %s", ErrInvalid, name, c.RegionID, m.configPath(name))
	}
	r := &region{cfg: c, k: c.K, m: c.M}
	copy(r.id[:], idb)
	if r.keys, err = format.DeriveKeys(key, r.id); err != nil {
		return nil, err
	}
	var errs []error
	r.stores, errs = m.openStores(ctx, c)
	r.bad = make([]error, len(r.stores))
	for i := range r.stores {
		if errs[i] != nil {
			r.bad[i] = errs[i]
			continue
		}
		cfg, err := readStoreConfig(ctx, r.stores[i])
		if err == nil {
			err = r.checkConfig(cfg, i)
		}
		if err != nil {
			r.bad[i] = fmt.Errorf("store %d (%s): %w", i, r.stores[i].Location(), err)
		}
	}
	good := 0
	for i, e := range r.bad {
		if e == nil {
			good++
			continue
		}
		if errors.Is(e, ErrWrongKey) || errors.Is(e, ErrMismatch) {
			r.close()
			return nil, fmt.Errorf("region %q: %w", name, e)
		}
		m.log.Warn("region store unusable", "region", name, "store", i, "err", e)
		if needAll {
			r.close()
			return nil, fmt.Errorf("region %q: %w", name, e)
		}
	}
	if good == 0 {
		r.close()
		return nil, fmt.Errorf("%w: region %q: no store is usable: %w", ErrUnavailable, name, joinErrs(r.bad...))
	}
	return r, nil
}

func readStoreConfig(ctx context.Context, s store.Store) (*format.Config, error) {
	b, err := s.Get(ctx, "config", 0, -1)
	if errors.Is(err, store.ErrNotFound) && holdsRegionObjects(ctx, s) {
		// The region's store lost its config: Check reports it missing,
		// Repair rewrites it.
		return nil, fmt.Errorf("%w: read config: %w", ErrUnavailable, err)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w (%w): the store holds no region marker (object %q, written when the region was created): a file system not mounted, an emptied bucket, or the wrong URL; nothing is written there", ErrUnavailable, ErrNoMarker, configName)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read config: %w", ErrUnavailable, err)
	}
	return format.DecodeConfig(b)
}

func (r *region) checkConfig(c *format.Config, i int) error {
	if c.RegionID != r.id {
		return fmt.Errorf("%w: store holds region %x, configured %x", ErrMismatch, c.RegionID, r.id)
	}
	if c.K != r.k || c.M != r.m || c.Index != i {
		return fmt.Errorf("%w: store holds shard %d of a %d+%d region; configured as shard %d of %d+%d", ErrMismatch, c.Index, c.K, c.M, i, r.k, r.m)
	}
	return c.Verify(r.keys)
}

// AddRegion configures a region. A file:// store's directory must exist
// (c.Create makes it). It checks that every store is reachable
// and writable. Stores that hold no region get a config object; if some
// already hold the region (another host created it), AddRegion attaches:
// the key must open it and k and m must match.
func (m *Manager) AddRegion(ctx context.Context, c RegionConfig) (RegionInfo, error) {
	if err := validRegionName(c.Name); err != nil {
		return RegionInfo{}, err
	}
	if c.K < 1 || c.M < 1 || c.K+c.M > 255 {
		return RegionInfo{}, fmt.Errorf("%w: region %q: k=%d m=%d (want k >= 1, m >= 1 parity store, k+m <= 255)", ErrInvalid, c.Name, c.K, c.M)
	}
	if len(c.Stores) != c.K+c.M {
		return RegionInfo{}, fmt.Errorf("%w: region %q: %d stores for %d+%d shards", ErrInvalid, c.Name, len(c.Stores), c.K, c.M)
	}
	for i, u := range c.Stores {
		if slices.Index(c.Stores, u) != i {
			return RegionInfo{}, fmt.Errorf("%w: region %q: store %q is listed twice", ErrInvalid, c.Name, store.Redact(u))
		}
	}
	if c.KeyFile == "" {
		return RegionInfo{}, fmt.Errorf("%w: region %q: no key file", ErrInvalid, c.Name)
	}
	if abs, err := filepath.Abs(c.KeyFile); err == nil {
		c.KeyFile = abs
	}
	key, err := format.ReadKeyFile(c.KeyFile, c.InsecureKeyFile)
	if err != nil {
		return RegionInfo{}, fmt.Errorf("region %q: key file %s: %w", c.Name, c.KeyFile, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := os.Stat(m.configPath(c.Name)); err == nil {
		return RegionInfo{}, fmt.Errorf("%w: region %q", ErrExists, c.Name)
	}
	if err := c.Retention.validate(); err != nil {
		return RegionInfo{}, err
	}
	for i, u := range c.Stores { // every URL's form before any store is looked at
		if err := store.CheckURL(u); err != nil {
			return RegionInfo{}, fmt.Errorf("region %q: %w", c.Name, fmt.Errorf("%w: store %d: %w", ErrInvalid, i, err))
		}
	}
	// Directories made here (--create) are removed again (when still
	// empty) if the region is not added: a failed add leaves nothing behind.
	var created []string
	added := false
	defer func() {
		for _, p := range created {
			if !added {
				_ = os.Remove(p)
			}
		}
	}()
	for i, u := range c.Stores { // before any directory is made
		if p, ok := strings.CutPrefix(u, "file://"); ok && strings.HasPrefix(p, "/") && pathWithin(filepath.Clean(p), m.dir) {
			return RegionInfo{}, fmt.Errorf("%w: region %q: store %d (%s) is inside this host's snapfs store directory %s: a region's store must be a place of its own (another disk, NAS or bucket), never in the store it protects", ErrInvalid, c.Name, i, u, m.dir)
		}
	}
	for i, u := range c.Stores {
		if p, ok := strings.CutPrefix(u, "file://"); ok && strings.HasPrefix(p, "/") {
			p = filepath.Clean(p)
			_, serr := os.Stat(p)
			if err := prepareLocal(p, c.Create); err != nil {
				if errors.Is(err, store.ErrMissing) {
					// The store does not exist: not found (exit 3), as its
					// message says, not an invalid argument.
					return RegionInfo{}, fmt.Errorf("region %q: store %d: %w", c.Name, i, notFound{err})
				}
				return RegionInfo{}, fmt.Errorf("%w: region %q: store %d: %w", ErrInvalid, c.Name, i, err)
			}
			if errors.Is(serr, os.ErrNotExist) {
				created = append(created, p)
			}
		}
	}
	oc := c
	oc.Create = true // region add may create a bucket
	stores, errs := m.openStores(ctx, oc)
	defer func() {
		for _, s := range stores {
			if s != nil {
				_ = s.Close()
			}
		}
	}()
	if err := firstErr(errs); err != nil {
		return RegionInfo{}, fmt.Errorf("region %q: %w", c.Name, err)
	}
	existing := make([]*format.Config, len(stores))
	errs = forEach(len(stores), func(i int) error {
		cfg, err := readStoreConfig(ctx, stores[i])
		if err != nil {
			if errors.Is(err, ErrNoMarker) {
				return nil
			}
			return fmt.Errorf("store %d (%s): %w", i, stores[i].Location(), err)
		}
		existing[i] = cfg
		return nil
	})
	if err := firstErr(errs); err != nil {
		return RegionInfo{}, fmt.Errorf("region %q: %w", c.Name, err)
	}
	// A store without the marker while others hold the region is refused
	// before anything is written (the probe included).
	if slices.ContainsFunc(existing, func(e *format.Config) bool { return e != nil }) && !c.Create {
		for i, e := range existing {
			if e == nil {
				return RegionInfo{}, fmt.Errorf("%w (%w): region %q: store %d (%s) holds no region while the others do (not mounted? emptied?); nothing was written; pass --create to make it a new store of the region", ErrUnavailable, ErrNoMarker, c.Name, i, stores[i].Location())
			}
		}
	}
	// Reachable and writable: a probe object round trip on every store.
	// Every probe is put before any is read back, and each store looks
	// for the others' probes: two stores that are one place (a trailing
	// slash, a symlink, a bind mount, one bucket prefix spelt twice)
	// would overwrite each other's shards and config, so they are refused
	// before anything else is written (TestTrial9RegionAddRefusesAliasedStores).
	probes := make([]string, len(stores))
	for i := range probes {
		probes[i] = "probe-" + randHex(8)
	}
	put := forEach(len(stores), func(i int) error {
		if err := stores[i].Put(ctx, probes[i], []byte("snapfs probe "+probes[i])); err != nil {
			return fmt.Errorf("%w: store %d (%s) is not writable: %w", ErrUnavailable, i, stores[i].Location(), err)
		}
		return nil
	})
	errs = forEach(len(stores), func(i int) error {
		if put[i] != nil {
			return put[i]
		}
		got, err := stores[i].Get(ctx, probes[i], 0, -1)
		if err == nil && string(got) != "snapfs probe "+probes[i] {
			err = errors.New("read back different bytes")
		}
		if err != nil {
			return fmt.Errorf("%w: store %d (%s): probe: %w", ErrUnavailable, i, stores[i].Location(), err)
		}
		for j := range stores {
			if j == i || put[j] != nil {
				continue
			}
			if _, err := stores[i].Get(ctx, probes[j], 0, -1); err == nil {
				return fmt.Errorf("%w: stores %d (%s) and %d (%s) are one place (the same directory or bucket prefix under two names): each shard needs a store of its own", ErrInvalid, min(i, j), store.Redact(c.Stores[min(i, j)]), max(i, j), store.Redact(c.Stores[max(i, j)]))
			}
		}
		return nil
	})
	for i := range stores {
		if put[i] == nil {
			if derr := stores[i].Delete(context.WithoutCancel(ctx), probes[i]); derr != nil && errs[i] == nil && !errors.Is(derr, store.ErrNotFound) {
				errs[i] = fmt.Errorf("%w: store %d (%s): probe: %w", ErrUnavailable, i, stores[i].Location(), derr)
			}
		}
	}
	if err := firstErr(errs); err != nil {
		return RegionInfo{}, fmt.Errorf("region %q: %w", c.Name, err)
	}
	r := &region{cfg: c, k: c.K, m: c.M}
	attached := false
	for _, e := range existing {
		if e != nil {
			r.id, attached = e.RegionID, true
			break
		}
	}
	if attached {
		// One region under two names on one host would have two
		// retentions and two caches, and a lazy disk's region could be
		// removed under the other name.
		others, err := m.ListRegions()
		if err != nil {
			m.log.Warn("region add: the configured regions cannot be listed: not checked for this region under another name", "region", c.Name, "err", err)
		}
		for _, o := range others {
			if o.RegionID == hex.EncodeToString(r.id[:]) {
				return RegionInfo{}, fmt.Errorf("%w: region %q: these stores hold region %q of this host (region id %s); remove it first to add it under another name", ErrExists, c.Name, o.Name, o.RegionID)
			}
		}
	} else {
		if r.id, err = format.NewRegionID(); err != nil {
			return RegionInfo{}, fmt.Errorf("region id: %w", err)
		}
	}
	if r.keys, err = format.DeriveKeys(key, r.id); err != nil {
		return RegionInfo{}, err
	}
	now := m.opts.Now().UTC()
	for i, e := range existing {
		if e == nil {
			continue
		}
		if err := r.checkConfig(e, i); err != nil {
			return RegionInfo{}, fmt.Errorf("region %q: store %d (%s): %w", c.Name, i, stores[i].Location(), err)
		}
		now = e.Created
	}
	errs = forEach(len(stores), func(i int) error {
		if existing[i] != nil {
			return nil
		}
		cfg := &format.Config{K: c.K, M: c.M, Index: i, RegionID: r.id, Created: now}
		if err := cfg.Seal(r.keys); err != nil {
			return err
		}
		if err := stores[i].Put(ctx, "config", cfg.Encode()); err != nil {
			return fmt.Errorf("%w: store %d (%s): write config: %w", ErrUnavailable, i, stores[i].Location(), err)
		}
		return nil
	})
	if err := firstErr(errs); err != nil {
		return RegionInfo{}, fmt.Errorf("region %q: %w", c.Name, err)
	}
	c.RegionID = hex.EncodeToString(r.id[:])
	c.Added = m.opts.Now().UTC()
	if err := m.saveConfig(c); err != nil {
		return RegionInfo{}, err
	}
	added = true
	m.log.Info("region added", "region", c.Name, "k", c.K, "m", c.M, "attached", attached)
	return RegionInfo{RegionConfig: c, Attached: attached}, nil
}

// pathWithin reports whether path is dir or inside it, symlinks resolved
// (path need not exist: its nearest existing ancestor is resolved).
func pathWithin(path, dir string) bool {
	rp, err := vfs.RealPath(path)
	if err != nil {
		return false
	}
	rd, err := vfs.RealPath(dir)
	return err == nil && vfs.Contains(rd, rp)
}

// notFound is an error that is also ErrNotFound, its message unchanged
// (one that already says what does not exist).
type notFound struct{ error }

func (e notFound) Is(target error) bool { return target == ErrNotFound }
func (e notFound) Unwrap() error        { return e.error }
