package verto

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		batch   bool
		items   int
	}{
		{"object", `{"jsonrpc":"2.0","id":1}`, false, false, 1},
		{"batch", `[1,2,3]`, false, true, 3},
		{"empty batch", `[]`, false, true, 0},
		{"scalar", `5`, false, false, 1},
		{"null", `null`, false, false, 1},
		{"trailing garbage (cJSON reads the first value)", `{"a":1} xyz`, false, false, 1},
		{"not json", `not json`, true, false, 0},
		{"empty", ``, true, false, 0},
		{"spaces", "  \n", true, false, 0},
		{"truncated", `{"a":`, true, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFrame([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			if f.Batch != tc.batch || len(f.Items) != tc.items {
				t.Fatalf("got %+v", f)
			}
		})
	}
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Message
	}{
		{"request", `{"jsonrpc":"2.0","id":7,"method":"echo","params":{"a":1}}`,
			Message{Valid: true, ID: json.RawMessage(`7`), Method: "echo", HasMethod: true, Params: json.RawMessage(`{"a":1}`)}},
		{"no id", `{"jsonrpc":"2.0","method":"echo"}`, Message{Valid: true, Method: "echo", HasMethod: true}},
		{"string id", `{"jsonrpc":"2.0","id":"x","method":"m"}`, Message{Valid: true, ID: json.RawMessage(`"x"`), Method: "m", HasMethod: true}},
		{"bad version", `{"jsonrpc":"1.0","id":1,"method":"m"}`, Message{ID: json.RawMessage(`1`), Method: "m", HasMethod: true}},
		{"numeric version", `{"jsonrpc":2.0,"id":1}`, Message{ID: json.RawMessage(`1`)}},
		{"no version", `{"id":1,"method":"m"}`, Message{ID: json.RawMessage(`1`), Method: "m", HasMethod: true}},
		{"reply", `{"jsonrpc":"2.0","id":3,"result":{}}`, Message{Valid: true, ID: json.RawMessage(`3`), IsReply: true}},
		{"null result is a reply", `{"jsonrpc":"2.0","id":3,"result":null}`, Message{Valid: true, ID: json.RawMessage(`3`), IsReply: true}},
		{"method not a string", `{"jsonrpc":"2.0","id":1,"method":5}`, Message{Valid: true, ID: json.RawMessage(`1`)}},
		{"names ignore case, as cJSON", `{"JSONRPC":"2.0","Method":"echo"}`, Message{Valid: true, Method: "echo", HasMethod: true}},
		{"null params are present", `{"jsonrpc":"2.0","method":"echo","params":null}`, Message{Valid: true, Method: "echo", HasMethod: true, Params: json.RawMessage(`null`)}},
		{"number", `1`, Message{}},
		{"array", `[1]`, Message{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseMessage(json.RawMessage(tc.in)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParams(t *testing.T) {
	p, ok := ParseParams(json.RawMessage(`{"Login":"a","passwd":5,"localBroadcast":true,"x":"1"}`))
	if !ok {
		t.Fatal("not parsed")
	}
	if s, ok := p.String("login"); !ok || s != "a" {
		t.Fatalf("case-insensitive lookup: %q %v", s, ok)
	}
	if _, ok := p.String("passwd"); ok {
		t.Fatal("a number is not a string")
	}
	if !p.True("localbroadcast") || p.True("x") {
		t.Fatal("True")
	}
	p.Set("sessid", Quote("s"))
	if got := string(p.Marshal()); got != `{"Login":"a","localBroadcast":true,"passwd":5,"sessid":"s","x":"1"}` {
		t.Fatal(got)
	}
	for _, raw := range []string{``, `null`, `[1]`, `"s"`, `5`} {
		if _, ok := ParseParams(json.RawMessage(raw)); ok {
			t.Fatalf("%q parsed as an object", raw)
		}
	}
}

func TestBuilders(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"error null id", ErrorReply(nil, CodeInvalid, MsgInvalidRequest), `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}`},
		{"error id", ErrorReply(json.RawMessage(`"a"`), CodeAuthFailed, MsgSessionInUse), `{"jsonrpc":"2.0","id":"a","error":{"code":-32001,"message":"Session in use"}}`},
		{"error object", ErrorObjectReply(json.RawMessage(`9`), []byte(`{"unauthorizedChannels":["c"]}`)), `{"jsonrpc":"2.0","id":9,"error":{"unauthorizedChannels":["c"]}}`},
		{"result", ResultReply(json.RawMessage(`1`), []byte(`{"message":"SENT"}`)), `{"jsonrpc":"2.0","id":1,"result":{"message":"SENT"}}`},
		{"request", Request(12, MethodPunt, nil), `{"jsonrpc":"2.0","id":12,"method":"verto.punt","params":{}}`},
		{"object", Object("a", "x<y", "n", -32002, "l", []string{"p"}, "e", []string(nil)), `{"a":"x<y","n":-32002,"l":["p"],"e":[]}`},
		{"quote", Quote("a\"b\\c\n\x01é\xff"), `"a\"b\\c\n\u0001é\ufffd"`},
		{"with member object", WithMember([]byte(`{"sessid":"old","a":1}`), "sessid", Quote("new")), `{"a":1,"sessid":"new"}`},
		{"with member array", WithMember([]byte(`[1]`), "sessid", Quote("s")), `[1,"s"]`},
		{"with member scalar", WithMember([]byte(`"x"`), "sessid", Quote("s")), `"x"`},
		{"with member null", WithMember([]byte(`null`), "sessid", Quote("s")), `null`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("got  %s\nwant %s", tc.got, tc.want)
			}
			if !json.Valid(tc.got) {
				t.Fatalf("not valid JSON: %s", tc.got)
			}
		})
	}
}

// FuzzParseFrame: any bytes parse without panicking, and every reply built
// from what was parsed is valid JSON.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}}`,
		`[1,2,3]`, `not json`, `{"id":99,"jsonrpc":"2.0"}`, `{"jsonrpc":"2.0","result":{}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"x","passwd":"y"}},{}]`,
		`{"a":1} trailing`, `"str"`, `null`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseFrame(data)
		if err != nil {
			return
		}
		for _, item := range fr.Items {
			m := ParseMessage(item)
			for _, b := range [][]byte{
				ErrorReply(m.ID, CodeInvalid, m.Method),
				ResultReply(m.ID, WithMember(m.Params, "sessid", Quote(m.Method))),
			} {
				if !json.Valid(b) {
					t.Fatalf("invalid reply %q for item %q", b, item)
				}
			}
			if p, ok := ParseParams(m.Params); ok {
				if !json.Valid(p.Marshal()) {
					t.Fatalf("params %q re-encode invalid", m.Params)
				}
			}
		}
	})
}
