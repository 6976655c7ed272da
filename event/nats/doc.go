// Package nats carries corebank's events on NATS JetStream: a Conn is an
// event.Publisher for the outbox relay and an event.Subscriber for consumers.
//
// In the embedded shape the server runs inside the corebank process
// (Embedded) and clients reach it without a socket (ConnectEmbedded); in the
// scale-out shape Connect dials an external cluster. Either way JetStream
// stores every event on disk and fsyncs each write before acknowledging it
// (sync_interval: always; the default, a flush every two minutes, lost
// acknowledged writes in Jepsen's 2025 analysis of NATS 2.12).
//
// The embedded server sets this itself; an external one needs it in its
// configuration, which NATS 2.10 and later understand (Debian 12 ships 2.9):
//
//	jetstream {
//	  store_dir: /var/lib/nats
//	  sync_interval: always
//	}
//
// and should be 2.12 or later, whose atomic batches let one fsync cover a
// whole relay batch instead of one event (see Conn.Publish).
//
// The outbox id travels as Nats-Msg-Id, so the stream drops a repeated
// publish within its duplicate window; consumers are durable pull consumers
// with explicit acks, delivered at least once.
package nats
