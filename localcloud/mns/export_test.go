package mns

// Waiters exposes the number of parked long polls to the external tests, so they can send
// only once a receive is really waiting.
func (s *Server) Waiters(queue string) int { return s.waiters(queue) }
