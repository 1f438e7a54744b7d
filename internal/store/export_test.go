package store

// SetReadHook has f run between the query of every read a cache of s
// keeps (Moderation, ClientInChannel) and its keeping, so that a test can
// make a change race the read there. Set it before s is in use.
func (s *Store) SetReadHook(f func(channelID string)) { s.readHook = f }
