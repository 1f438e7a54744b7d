package hub

import "bytes"

// isEvent reports a verto.event frame.
func isEvent(p []byte) bool {
	return bytes.Contains(p[:min(len(p), 64)], []byte(`"verto.event"`))
}
