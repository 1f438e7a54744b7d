package hub

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// TestLargestChatBroadcast: the largest chat message a page sends (docs
// of issue 19: 2,000 code points, each 4 bytes of UTF-8, sealed with
// AES-256-GCM, base64 in a JSON object, which encodeBody turns into
// base64 again) fits in one broadcast under the default MaxEventBytes,
// and costs 4 of the broadcast budget's tokens (one per started 4 KiB).
func TestLargestChatBroadcast(t *testing.T) {
	const channel = "0b0d1a3c-5e7f-4a1b-8c2d-3e4f5a6b7c8d" // a channel id's length
	plain, err := json.Marshal(map[string]any{"x": strings.Repeat("\U0001F600", 2000), "n": 9007199254740991})
	if err != nil {
		t.Fatal(err)
	}
	key, iv := make([]byte, 32), make([]byte, 12)
	_, _ = rand.Read(key)
	_, _ = rand.Read(iv)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	sealed := gcm.Seal(nil, iv, plain, []byte(channel+">sender>kkkkkkkkkkkkkkkk"))
	body, _ := json.Marshal(map[string]string{
		"t": "chat", "k": "kkkkkkkkkkkkkkkk", // a key id's most
		"iv": base64.StdEncoding.EncodeToString(iv), "c": base64.StdEncoding.EncodeToString(sealed),
	})
	params, _ := json.Marshal(map[string]any{
		"eventChannel": channel, "eventData": base64.StdEncoding.EncodeToString(body), "localBroadcast": true,
	})
	t.Logf("plaintext %d bytes, sealed %d, chat object %d, params %d of %d; %d tokens",
		len(plain), len(sealed), len(body), len(params), DefaultMaxEventBytes, cost(len(params)))
	if len(params) > DefaultMaxEventBytes {
		t.Fatalf("the largest chat broadcast's params take %d bytes, over %d", len(params), DefaultMaxEventBytes)
	}
	if c := cost(len(params)); c != 4 {
		t.Errorf("it costs %d tokens, want 4", c)
	}

	gw := newDirGateway()
	gw.add("ann", "pw", channel)
	th := startHub(t, gw, nil)
	ann := joined(t, th, gw, "ann", "s-ann", channel)
	var p map[string]any
	_ = json.Unmarshal(params, &p)
	result(t, ann.call(5, "verto.broadcast", p))
	if d, _ := nextEvent(t, ann); d != p["eventData"] {
		t.Fatal("the broadcast did not come back whole")
	}
}
