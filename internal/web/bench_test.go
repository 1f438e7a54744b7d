package web

import (
	"testing"

	"channels/internal/store/storetest"
)

// BenchmarkChannelPage measures the channel page over HTTP on each
// database: a returning browser (session and client exist) and a new
// browser each time (new session, new client).
func BenchmarkChannelPage(b *testing.B) {
	for _, be := range storetest.Stores(b) {
		s := newSite(b, be.Store, nil)
		ch := s.channel("Lobby", true, 0)
		b.Run(be.Name+"/returning", func(b *testing.B) {
			br := s.browser()
			br.t = b
			first := br.channelPage(ch.ID)
			for b.Loop() {
				if c := br.channelPage(ch.ID); c.ClientID != first.ClientID {
					b.Fatal("client changed")
				}
			}
		})
		b.Run(be.Name+"/new", func(b *testing.B) {
			for b.Loop() {
				br := s.browser()
				br.t = b
				br.channelPage(ch.ID)
			}
		})
	}
}

// BenchmarkIndex measures the front page with a few dozen channels.
func BenchmarkIndex(b *testing.B) {
	for _, be := range storetest.Stores(b) {
		s := newSite(b, be.Store, nil)
		for range 30 {
			s.channel("A public channel", true, 0)
		}
		b.Run(be.Name, func(b *testing.B) {
			br := s.browser()
			br.t = b
			for b.Loop() {
				if r := br.get("/"); r.status != 200 {
					b.Fatal(r.status)
				}
			}
		})
	}
}
