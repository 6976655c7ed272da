package nats

// SyncAlways reports whether s's JetStream fsyncs every write, for tests.
func SyncAlways(s *Server) bool {
	c := s.ns.JetStreamConfig()
	return c != nil && c.SyncAlways
}
