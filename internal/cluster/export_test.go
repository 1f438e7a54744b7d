package cluster

// HeartbeatFrom reports the node a heartbeat came from.
func HeartbeatFrom(data []byte) (string, bool) {
	_, kind, d, ok := envelope(data, wireMin, wireMax)
	if !ok || kind != kindHeartbeat {
		return "", false
	}
	node := d.str()
	return node, d.err == nil
}

// NewWithVersions is New for a node that reads (and speaks) the wire
// versions vmin to vmax: an older or a newer release.
func NewWithVersions(opts Options, vmin, vmax byte) (*Node, error) { return newNode(opts, vmin, vmax) }

// Speaks is the wire version the node speaks now.
func (n *Node) Speaks() byte { return n.version() }

// Encode builds a message of the given wire version and kind from fields:
// strings, []byte, uint64 and []string (a list).
func Encode(version, kind byte, fields ...any) []byte {
	e := newEnc(version, kind, 64)
	for _, f := range fields {
		switch v := f.(type) {
		case string:
			e.str(v)
		case []byte:
			e.bytes(v)
		case uint64:
			e.num(v)
		case []string:
			e.list(v)
		}
	}
	return e.b
}

// Kinds of messages, for tests that build them.
const (
	KindEvent     = kindEvent
	KindHeartbeat = kindHeartbeat
)

// KindRevive is the kind of a request to give members back.
const KindRevive = kindRevive

// SilentBeats is how many heartbeats a peer may miss before direct
// messages to members only on it are refused.
const SilentBeats = silentBeats
