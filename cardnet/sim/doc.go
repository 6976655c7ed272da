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
package sim
