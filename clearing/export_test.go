package clearing

// Parsed is a parsed clearing file as the external tests see it.
type Parsed struct {
	ID, Network, Date string
	Count             int
	Total             int64
	Records           []Record
	PANs              []string // the full card numbers, by record
}

// Parse exposes the clearing file parser to the external tests.
func Parse(content []byte) (*Parsed, error) {
	f, err := parse(content)
	if err != nil {
		return nil, err
	}
	p := &Parsed{ID: f.id, Network: f.network, Date: f.date, Count: f.count, Total: f.total}
	for _, l := range f.lines {
		p.Records = append(p.Records, l.Record)
		p.PANs = append(p.PANs, l.pan)
	}
	return p, nil
}
