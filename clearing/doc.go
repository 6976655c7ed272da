// Package clearing settles card payments: it ingests the card network's
// clearing files, matches each record to its authorization, and posts the
// final amount against the hold, force-posts what has no hold, credits
// refunds, and reports what it could not match or found suspicious.
// The file format is documented in docs/clearing.md.
package clearing
