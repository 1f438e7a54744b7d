package hub

// take is the writer of the tests that drive a connection without a
// socket: it moves every queued frame out as the writer would write it
// (nil for the close marker) and releases what the frames held.
func (q *outQueue) take(dst [][]byte) [][]byte {
	for _, f := range q.takeFrames(nil) {
		var b []byte
		switch {
		case f.closing():
		case f.sh == nil:
			b = f.raw
		case !f.sh.event:
			b = f.sh.b
		default:
			b = f.appendEvent(nil)
		}
		q.total.release(f)
		dst = append(dst, b)
	}
	return dst
}
