package hub

import (
	"fmt"
	"reflect"
	"testing"

	"channels/internal/fixtures"
)

// TestDirectoryCache checks that parseDirectory answers the same from the
// cache as from encoding/xml on the recorded documents, that what it
// returns can be changed without changing later answers, and that the
// cache stays within its bounds.
func TestDirectoryCache(t *testing.T) {
	g := newRecordedGateway(t)
	docs := map[string]string{"": g.notFound}
	for id, doc := range g.byUser {
		docs[id] = doc
	}
	for id, doc := range docs {
		for _, user := range []string{id, "nobody"} {
			want, wantOK := parseDirectoryUncached([]byte(doc), fixtures.Domain, user)
			for range 3 {
				got, ok := parseDirectory([]byte(doc), fixtures.Domain, user)
				if ok != wantOK || !reflect.DeepEqual(got, want) {
					t.Fatalf("user %q: cached %v %v, encoding/xml %v %v", user, got, ok, want, wantOK)
				}
				if ok && len(got.params) > 0 {
					got.params[0].Value = "changed"
				}
			}
		}
	}
	if _, ok := parseDirectory([]byte("<document"), fixtures.Domain, "x"); ok {
		t.Fatal("an unparsable document was found")
	}
	if _, ok := parseDirectory([]byte("<document"), fixtures.Domain, "x"); ok {
		t.Fatal("an unparsable document was found the second time")
	}
	for i := range 2 * docCacheEntries {
		parseDirectory(fmt.Appendf(nil, `<document type="freeswitch/xml"><!-- %d --></document>`, i), fixtures.Domain, "x")
	}
	directoryDocs.mu.Lock()
	n := len(directoryDocs.docs)
	directoryDocs.mu.Unlock()
	if n > docCacheEntries {
		t.Fatalf("cache holds %d documents, bound %d", n, docCacheEntries)
	}
}

// parseDirectoryUncached is parseDirectory without the cache.
func parseDirectoryUncached(doc []byte, domain, id string) (*dirUser, bool) {
	d, ok := decodeDirectory(doc)
	if !ok {
		return nil, false
	}
	return findUser(d, domain, id)
}

func TestReportWorkersFor(t *testing.T) {
	for pool, want := range map[int]int{0: DefaultReportWorkers, -1: DefaultReportWorkers, 1: 1, 2: 1, 6: 3, 8: 4, 16: 8, 32: 16} {
		if got := ReportWorkersFor(pool); got != want {
			t.Errorf("ReportWorkersFor(%d) = %d, want %d", pool, got, want)
		}
	}
	th := startHub(t, newRecordedGateway(t), func(o *Options) { o.ReportWorkers = 7 })
	if n := len(th.h.reports.queues); n != 7 {
		t.Errorf("%d report workers, asked 7", n)
	}
}
