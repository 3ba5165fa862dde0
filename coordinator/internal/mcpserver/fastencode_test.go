package mcpserver

import (
	"encoding/json"
	"net"
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/pkg/api"
)

// sdkEvent is the event as the generic encoding writes it (the SDK's
// MarshalJSON for the result): the bytes appendEvent must produce.
func sdkEvent(t testing.TB, id string, res *mcp.CallToolResult) string {
	data, err := encodeResponse(json.RawMessage(id), res)
	if err != nil {
		t.Fatalf("encodeResponse: %v", err)
	}
	return eventHead + string(data) + eventTail
}

func checkEvent(t testing.TB, id string, res *mcp.CallToolResult, wantFast bool) {
	t.Helper()
	want := sdkEvent(t, id, res)
	got, ok := appendEventFast([]byte("keep:"), json.RawMessage(id), res)
	if ok != wantFast {
		t.Fatalf("fast encoding used: %v, want %v (%s)", ok, wantFast, want)
	}
	if !ok {
		if string(got) != "keep:" {
			t.Fatalf("refused, yet wrote %q", got)
		}
		got, _ = appendEvent([]byte("keep:"), json.RawMessage(id), res)
	}
	if string(got) != "keep:"+want {
		t.Fatalf("appendEvent:\n%s\nthe SDK's encoding:\n%s", got, "keep:"+want)
	}
}

// TestAppendEventMatches: the fast encoding of the results the tool handlers
// make is byte for byte the SDK's, HTML characters, controls, U+2028,
// invalid UTF-8 and spaced structured content included; other shapes fall
// back to the SDK's encoding.
func TestAppendEventMatches(t *testing.T) {
	body := []byte("{\"id\": \"tkt_1\",\n \"subject\":\"<b>&\\\"é\u2028\u2029\\u003c</b>\", \"n\":[1, 2 ,{}]}\n")
	ok := result(&Tool{Def: &mcp.Tool{OutputSchema: map[string]any{"type": "object"}}}, &Response{Status: 200, Body: body})
	if _, valid := ok.StructuredContent.(validJSON); !valid {
		t.Fatalf("the test result's structured content is %T, want validJSON", ok.StructuredContent)
	}
	notFound := result(&Tool{Def: &mcp.Tool{}}, &Response{Status: 404, Body: []byte(`{"error":{"code":"not_found","message":"no <such> ticket & \u2028"}}` + "\n")})
	quote := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: `{"confirmation_required":true}`}},
		Meta: mcp.Meta{"hostplane/status": 202, "hostplane/confirmation_required": true}}
	raw := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "x"}}, StructuredContent: json.RawMessage(" {\"a\" : \"<\"} ")}
	weird := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "a\x00\x1f\x7f\b\f\n\r\t\xff\xfe z \xe2\x80 \U0001F600"}}}
	for name, res := range map[string]*mcp.CallToolResult{"ok": ok, "404": notFound, "quote": quote, "controls": weird, "raw structured": raw,
		"error result": errorResult(api.NewError(400, "invalid_argument", `bad "argument" <x>`))} {
		for _, id := range []string{"2", "-17", `"a-1"`, `""`, "0"} {
			t.Run(name+" id "+id, func(t *testing.T) { checkEvent(t, id, res, true) })
		}
	}
	// Shapes the fast encoding leaves to the SDK's.
	for name, res := range map[string]*mcp.CallToolResult{
		"no content":     {Meta: mcp.Meta{"hostplane/status": 200}},
		"two contents":   {Content: []mcp.Content{&mcp.TextContent{Text: "a"}, &mcp.TextContent{Text: "b"}}},
		"content meta":   {Content: []mcp.Content{&mcp.TextContent{Text: "a", Meta: mcp.Meta{"x": 1}}}},
		"string meta":    {Content: []mcp.Content{&mcp.TextContent{Text: "a"}}, Meta: mcp.Meta{"x": "y"}},
		"html meta key":  {Content: []mcp.Content{&mcp.TextContent{Text: "a"}}, Meta: mcp.Meta{"<x>": 1}},
		"typed content":  {Content: []mcp.Content{&mcp.TextContent{Text: "a"}}, StructuredContent: map[string]any{"a": 1}},
		"image content":  {Content: []mcp.Content{&mcp.ImageContent{Data: []byte("x"), MIMEType: "image/png"}}},
		"bad structured": {Content: []mcp.Content{&mcp.TextContent{Text: "a"}}, StructuredContent: json.RawMessage(`{"a":`)},
	} {
		t.Run("fallback "+name, func(t *testing.T) {
			if name == "bad structured" {
				if _, ok := appendEventFast(nil, json.RawMessage("1"), res); ok {
					t.Fatal("fast encoding took invalid structured content")
				}
				if _, err := appendEvent(nil, json.RawMessage("1"), res); err == nil {
					t.Fatal("invalid structured content encoded")
				}
				return
			}
			checkEvent(t, "1", res, false)
		})
	}
	if _, ok := appendEventFast(nil, json.RawMessage("1.5"), quote); ok {
		t.Fatal("fast encoding took an id the fast decoder refuses")
	}
}

// FuzzAppendEventMatches: for any operation answer (status, body) and id,
// the fast encoding of the tool's result is the SDK's bytes.
func FuzzAppendEventMatches(f *testing.F) {
	f.Add(200, []byte(`{"id":"tkt_1","s":"<&>"}`), "2", true)
	f.Add(404, []byte(`{"error":{"message":"x"}}`), `"a"`, false)
	f.Add(200, []byte("[1,2]\n"), "7", true)
	f.Add(500, []byte("\xff\u2028 not json"), "0", true)
	f.Fuzz(func(t *testing.T, status int, body []byte, id string, schema bool) {
		if !plainID(json.RawMessage(id)) {
			return
		}
		tool := &Tool{Def: &mcp.Tool{}}
		if schema {
			tool.Def.OutputSchema = map[string]any{"type": "object"}
		}
		res := result(tool, &Response{Status: status, Body: body})
		checkEvent(t, id, res, true)
		checkResultEvent(t, id, tool, &Response{Status: status, Body: body})
	})
}

// TestAppendResultEventMatches: the event written straight from an
// operation's answer is appendEvent's of result(t, resp), for successes
// with and without an output schema, errors, bodies that are not objects or
// not JSON, HTML characters and spacing; ids the fast decoder refuses are
// refused.
func TestAppendResultEventMatches(t *testing.T) {
	schema := &Tool{Def: &mcp.Tool{OutputSchema: map[string]any{"type": "object"}}}
	plain := &Tool{Def: &mcp.Tool{}}
	for name, resp := range map[string]*Response{
		"ok":         {Status: 200, Body: []byte("{\"id\": \"tkt_1\",\n \"s\":\"<b>&\\\"é\u2028\\u003c</b>\"}\n")},
		"created":    {Status: 201, Body: []byte(`{"id":"x"}`)},
		"404":        {Status: 404, Body: []byte(`{"error":{"code":"not_found","message":"no <such> ticket"}}` + "\n")},
		"array":      {Status: 200, Body: []byte("[1, 2]\n")},
		"not json":   {Status: 200, Body: []byte("{\"a\": \xff")},
		"empty":      {Status: 204},
		"big status": {Status: 1 << 40, Body: []byte("{}")},
		// The operation's Retry-After of an error, as _meta's
		// hostplane/retry_after; a success's, or one that is no whole
		// seconds, is not.
		"503 retry":   {Status: 503, Header: http.Header{"Retry-After": {"1"}}, Body: []byte(`{"code":"leader_unreachable"}`)},
		"429 retry":   {Status: 429, Header: http.Header{"Retry-After": {"17"}}, Body: []byte(`{"code":"rate_limited"}`)},
		"200 retry":   {Status: 200, Header: http.Header{"Retry-After": {"1"}}, Body: []byte(`{}`)},
		"date retry":  {Status: 503, Header: http.Header{"Retry-After": {"Wed, 21 Oct 2015 07:28:00 GMT"}}, Body: []byte(`{}`)},
		"minus retry": {Status: 503, Header: http.Header{"Retry-After": {"-1"}}, Body: []byte(`{}`)},
	} {
		t.Run(name, func(t *testing.T) {
			for _, tool := range []*Tool{schema, plain} {
				for _, id := range []string{"2", `"a-1"`, "0"} {
					checkResultEvent(t, id, tool, resp)
				}
			}
		})
	}
	if got, ok := appendResultEvent([]byte("keep"), json.RawMessage("1.5"), schema, &Response{Status: 200, Body: []byte("{}")}); ok || string(got) != "keep" {
		t.Fatalf("id 1.5: %q %v", got, ok)
	}
}

func checkResultEvent(t testing.TB, id string, tool *Tool, resp *Response) {
	t.Helper()
	want, err := appendEvent([]byte("keep:"), json.RawMessage(id), result(tool, resp))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := appendResultEvent([]byte("keep:"), json.RawMessage(id), tool, resp)
	if !ok || string(got) != string(want) {
		t.Fatalf("appendResultEvent (ok %v):\n%s\nappendEvent of the result:\n%s", ok, got, want)
	}
}

// TestLoopbackAddr: the fast path's test of its listener's address is the
// SDK's test of the address's text.
func TestLoopbackAddr(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80}, &net.TCPAddr{IP: net.IPv4(127, 9, 8, 7).To4(), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("::1"), Port: 443}, &net.TCPAddr{IP: net.ParseIP("::1"), Zone: "lo"},
		&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1")}, &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 8080},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, &net.TCPAddr{}, &net.TCPAddr{IP: net.IPv6zero},
		&net.UnixAddr{Name: "/run/x.sock", Net: "unix"},
	} {
		if got, want := loopbackAddr(a), isLoopback(a.String()); got != want {
			t.Errorf("%v: loopbackAddr %v, isLoopback(String()) %v", a, got, want)
		}
	}
}

// FuzzAppendCompactHTML: for any valid JSON, appendCompactHTML writes
// encoding/json's bytes for it as a json.RawMessage (compacted, HTML
// characters and U+2028/U+2029 escaped inside strings), after what dst
// already holds.
func FuzzAppendCompactHTML(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { "a" : [ 1 , 2 ] ,"b":"<&>" } `, "\n[\"\\\"<\\\\\", \"\u2028\u2029 \u2027 \xe2\x80\"]\t",
		`{"s":"ün\\u003c \\\\"  ,  "t" : null , "u":true}`, `"x"`, `  -1.5e3 `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if !json.Valid(src) {
			return
		}
		want, err := json.Marshal(json.RawMessage(src))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendCompactHTML([]byte("x"), src); string(got[1:]) != string(want) || got[0] != 'x' {
			t.Fatalf("%q: got %s want %s", src, got, want)
		}
	})
}

// BenchmarkAppendResultEvent: the fast path's encoding of a get_ticket
// answer (a ticket with two messages, as the REST handler writes it) into
// the SSE event: the text copy and the structured content.
func BenchmarkAppendResultEvent(b *testing.B) {
	tk := api.Ticket{ID: "tkt_01jd8x4k2m9q", Number: 42, Subject: "Server unreachable since the reboot", Status: "open",
		Priority: "normal", Department: "support",
		Messages: []api.TicketMessage{
			{ID: "msg_1", Author: "customer", Body: "Hello,\nmy server vps-12 does not answer since this morning's reboot. Could you check it? Thanks & regards"},
			{ID: "msg_2", Author: "staff", Body: "We are looking into it: the host <node-7> was restarted at 06:10 UTC."},
		}}
	body, err := json.Marshal(tk)
	if err != nil {
		b.Fatal(err)
	}
	tool := &Tool{Def: &mcp.Tool{OutputSchema: map[string]any{"type": "object"}}}
	resp := &Response{Status: 200, Body: append(body, '\n')}
	id := json.RawMessage("2")
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = appendResultEvent(buf[:0], id, tool, resp)
	}
}

// TestRetryAfterMeta: a tool call whose operation answered an error with
// Retry-After carries its seconds as _meta's hostplane/retry_after (the /mcp
// answer itself is a 200, whose headers say nothing of the operation's).
func TestRetryAfterMeta(t *testing.T) {
	plain := &Tool{Def: &mcp.Tool{}}
	res := result(plain, &Response{Status: 503, Header: http.Header{"Retry-After": {"1"}}, Body: []byte(`{}`)})
	if res.Meta[metaRetryAfter] != 1 || res.Meta[metaStatus] != 503 {
		t.Errorf("503 with Retry-After 1: _meta %v", res.Meta)
	}
	for _, resp := range []*Response{{Status: 503, Body: []byte(`{}`)}, {Status: 201, Header: http.Header{"Retry-After": {"1"}}}} {
		if res := result(plain, resp); res.Meta[metaRetryAfter] != nil {
			t.Errorf("%d %v: _meta %v; want no retry_after", resp.Status, resp.Header, res.Meta)
		}
	}
}
