package index

// KindPolicy is the catalog kind of automatic snapshot policies (issue 9).
// Like every catalog record it is logged with the catalog, so `index
// rebuild` recovers it.
const KindPolicy CatalogKind = 'p'

// Policy is the catalog record of an automatic snapshot policy. Spec is
// opaque here: rowstore/policy encodes and checks it (its own version and
// checksum, inside the record's).
type Policy struct {
	Name string `json:"name"`
	Spec []byte `json:"spec"`
}
