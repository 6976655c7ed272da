package store

// Queued is how many transactions wait for the next group.
func (c *Committer) Queued() int { return len(c.ops) }
