// Package unreadload measures what subscribers that never read cost the
// real binary (issue 17, item 1): BenchmarkUnreadSubscribers runs
// `channels serve` on a throw-away SQLite database with one channel, N
// subscribers of it (default 1,024) that log in, subscribe and then never
// read, from four addresses (127.0.0.2–127.0.0.5, 256 each: the hub's
// limit per address), reconnecting whenever the hub cuts them, and 30
// members (from 127.0.0.6) that read everything and broadcast 16 KiB
// events as fast as their budget lets them. It reports the server's peak
// resident set (VmHWM), its resident set at the end, the events the
// members received and the frames the hub did not deliver.
//
//	go test -run '^$' -bench UnreadSubscribers -benchtime 1x -timeout 10m ./internal/hub/unreadload
//
// CHANNELS_UNREAD_BINARY names the binary to measure (default: this
// tree's cmd/channels, built for the run), so that two builds can be
// compared on one machine; CHANNELS_UNREAD_N sets N and
// CHANNELS_UNREAD_SECONDS how long the members broadcast (default 30, so
// that the hub's 10 s write timeout cuts the subscribers and they come
// back at least once). The per-address byte budget is lifted
// (CHANNELS_HUB_BYTES_PER_ADDRESS), as the 30 members share one address;
// every other setting is the default.
package unreadload
