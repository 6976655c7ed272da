// Package sim is a card network in a box: it connects to corebank's
// gateway as a network would, signs on, echoes, and sends the ISO 8583
// traffic of cardholders paying at a built-in catalogue of merchants
// (purchases, declines, reversals, incremental authorizations,
// retransmissions, stand-in advices, single-message financials, refunds),
// then writes the clearing file that settles what was approved.
//
// The demo runs it at a gentle rate so that payments flow; `corebank
// simulate` runs it against any gateway; `corebank bench auth` uses its
// Traffic to drive load. It only ever speaks ISO 8583 over TCP: it knows
// nothing of the bank behind the gateway.
//
// Like a store-and-forward network, it sends a reversal or a stand-in
// advice the issuer did not acknowledge (no answer, or not 00) again as a
// repeat (0401, 0121), up to five times, and counts it on its own side
// whatever the issuer says: the clearing file presents what remains after
// reversals, and every stand-in approval, since the network paid it. Each
// run's acquirer references (ARNs) start at a random point of the
// process's own, not the run's seed, so that two runs on one day, even of
// one seed, never present under one reference.
package sim
