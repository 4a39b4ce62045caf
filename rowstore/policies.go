package rowstore

import (
	"fmt"
	"sort"

	"github.com/snapfs/snapfs/index"
)

// SnapshotOptions are CreateSnapshotWith's: Kind ("manual" by default,
// "automatic" for a policy's), Policy (the policy that takes it) and
// Consistency ("crash", "filesystem" or "application"), recorded in the
// snapshot's catalog record.
type SnapshotOptions struct {
	Kind        string
	Policy      string
	Consistency string
}

// PolicyRecord is a stored automatic snapshot policy: its name and its
// encoded spec (rowstore/policy's record; opaque to the engine).
type PolicyRecord struct {
	Name string
	Spec []byte
}

// PutPolicy stores a policy record durably, logged with the catalog (so
// index rebuild recovers it). With create, a policy of that name must not
// exist (ErrExists); without, it must (ErrNotFound).
func (s *Store) PutPolicy(name string, spec []byte, create bool) error {
	if err := firstErr(s.checkOpen(), ValidateName("policy", name)); err != nil {
		return err
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	return s.catalogUpdateSync(func(t *index.Txn) error {
		ok, err := t.Exists(index.KindPolicy, name)
		if err != nil {
			return err
		}
		if create && ok {
			return fmt.Errorf("%w: policy %q", ErrExists, name)
		}
		if !create && !ok {
			return fmt.Errorf("%w: policy %q", ErrNotFound, name)
		}
		return t.Put(index.KindPolicy, name, index.Policy{Name: name, Spec: spec})
	})
}

// GetPolicy returns a stored policy record.
func (s *Store) GetPolicy(name string) (PolicyRecord, error) {
	if err := firstErr(s.checkOpen(), ValidateName("policy", name)); err != nil {
		return PolicyRecord{}, err
	}
	var r index.Policy
	if err := s.idx.View(func(t *index.Txn) error { return t.Get(index.KindPolicy, name, &r) }); err != nil {
		return PolicyRecord{}, notFound("policy", name, err)
	}
	return PolicyRecord(r), nil
}

// ListPolicies lists the stored policy records by name.
func (s *Store) ListPolicies() ([]PolicyRecord, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	out, err := listCatalog(s, index.KindPolicy, func(_ *Store, r index.Policy) (PolicyRecord, error) { return PolicyRecord(r), nil })
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeletePolicy deletes a stored policy record (its snapshots stay).
func (s *Store) DeletePolicy(name string) error {
	return s.deleteNamed(index.KindPolicy, "policy", name)
}
