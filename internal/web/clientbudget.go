package web

import "time"

// Default budget for new clients per address: every new client is a
// database row and a new browser session (kept for the session lifetime),
// so a visitor without a cookie cannot make the server store without
// bound. A burst covers a person opening many channels, or an office
// behind one NAT opening one link; then one more every interval.
const (
	DefaultNewClientBurst = 30
	DefaultNewClientEvery = 10 * time.Second
)
