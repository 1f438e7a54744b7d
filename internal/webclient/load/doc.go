// Package load measures what presence costs a channel, with the browser
// client's own code: presence-load.mjs runs N copies of the channel page's
// controller (internal/webclient/static, imported unmodified) in Node, each
// over its own WebSocket from its own address on 127.0.0.0/8, against the
// whole application served in-process by BenchmarkPresenceLoad. It reports
// the frames and bytes per second a channel receives at rest and under a
// hostile member's hellos, the frames one join and one leave cost, how
// long a newcomer, a reloaded page and a second tab take to list everyone
// present, and the CPU the server spends meanwhile.
//
//	go test -run '^$' -bench PresenceLoad -benchtime 1x -timeout 30m ./internal/webclient/load
//	CHANNELS_PRESENCE_N=30 go test -run '^$' -bench PresenceLoad -benchtime 1x ./internal/webclient/load
//
// CHANNELS_PRESENCE_N sets N (default 300); CHANNELS_PRESENCE_OPTIONS,
// a JSON object, overrides the tool's options (see DEFAULTS in
// presence-load.mjs), e.g. '{"steadySeconds": 10, "reloads": 5}';
// CHANNELS_PRESENCE_NODE_FLAGS adds flags to node's command line (e.g.
// "--cpu-prof --cpu-prof-dir=/tmp/prof").
// TestPresenceLoad runs the tool once with a handful of members, so that a
// change to the client that breaks it shows in the tests.
package load
