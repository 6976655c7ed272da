// Package event is how corebank services tell each other what happened.
//
// A service writes its events into its own outbox table in the same SQL
// transaction as the change they describe (Append), so an event exists if
// and only if its change committed. A Relay then publishes the outbox to the
// broker (NATS JetStream by default, see event/nats) with the outbox id as the
// broker's de-duplication id, and deletes what the broker acknowledged.
// Delivery is at least once: consumers make their handling idempotent, most
// simply with Seen in the same transaction as their own change.
//
// Memory is an in-process broker for the unit tests of other packages; the
// embedded and scale-out shapes both run on JetStream.
package event
