package codec

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

const (
	uiOrigin = "http://127.0.0.1:8233"
	token    = "codec-token-for-tests"
)

// uiPayloads is the JSON the Temporal UI posts to {endpoint}/decode: bytes
// in base64, as protobuf JSON writes them.
type uiPayloads struct {
	Payloads []uiPayload `json:"payloads"`
}

type uiPayload struct {
	Metadata map[string][]byte `json:"metadata"`
	Data     []byte            `json:"data"`
}

func startServer(t *testing.T, c converter.PayloadCodec) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler(c, HandlerOptions{Origins: []string{uiOrigin}, Token: token}))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func encryptedBody(t *testing.T, c converter.PayloadCodec) []byte {
	t.Helper()
	p, err := DataConverter(c).ToPayload(input{Service: "web", Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(uiPayloads{Payloads: []uiPayload{{Metadata: p.Metadata, Data: p.Data}}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(secret)) {
		t.Fatal("request body holds the secret in clear text")
	}
	return body
}

func TestHandlerDecodesForTheUI(t *testing.T) {
	c := newCodec(t, testKey(3))
	srv := startServer(t, c)

	resp, body := post(t, srv.URL+"/decode", encryptedBody(t, c), map[string]string{
		"Origin":        uiOrigin,
		"X-Namespace":   "default",
		"Authorization": "Bearer " + token,
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != uiOrigin {
		t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, uiOrigin)
	}
	if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Access-Control-Allow-Credentials = %q, want true", got)
	}
	var out uiPayloads
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	if len(out.Payloads) != 1 {
		t.Fatalf("got %d payloads, want 1: %s", len(out.Payloads), body)
	}
	p := out.Payloads[0]
	if got := string(p.Metadata[converter.MetadataEncoding]); got != converter.MetadataEncodingJSON {
		t.Errorf("decoded encoding = %q, want %q", got, converter.MetadataEncodingJSON)
	}
	var in input
	if err := json.Unmarshal(p.Data, &in); err != nil {
		t.Fatalf("decoded data %q: %v", p.Data, err)
	}
	if in != (input{Service: "web", Password: secret}) {
		t.Errorf("decoded %+v", in)
	}
}

func TestHandlerRefusesWithoutToken(t *testing.T) {
	c := newCodec(t, testKey(3))
	srv := startServer(t, c)
	body := encryptedBody(t, c)
	for name, auth := range map[string]string{
		"missing":      "",
		"wrong":        "Bearer not-the-token",
		"prefix":       "Bearer " + token[:len(token)-1],
		"basic scheme": "Basic " + token,
		"bare token":   token,
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{"Origin": uiOrigin}
			if auth != "" {
				h["Authorization"] = auth
			}
			resp, got := post(t, srv.URL+"/decode", body, h)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, got)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if bytes.Contains(got, []byte(secret)) {
				t.Error("refused response holds the secret")
			}
		})
	}
}

func TestHandlerCORSPreflight(t *testing.T) {
	srv := startServer(t, newCodec(t, testKey(3)))
	preflight := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace,authorization")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp := preflight(uiOrigin)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight status %d, want 204", resp.StatusCode)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":      uiOrigin,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "POST, OPTIONS",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"content-type", "x-namespace", "authorization"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
		}
	}

	resp = preflight("http://evil.example")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: status %d, allow-origin %q; want 403 and none", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// The temporal CLI (--codec-endpoint, --codec-auth) and the SDK's remote
// codec talk to the same endpoints without an Origin.
func TestHandlerServesRemoteCodec(t *testing.T) {
	c := newCodec(t, testKey(3))
	srv := startServer(t, c)
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: srv.URL,
		ModifyRequest: func(r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		},
	})
	orig := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"` + secret + `"`)}
	enc, err := remote.Encode([]*commonpb.Payload{orig})
	if err != nil {
		t.Fatalf("remote encode: %v", err)
	}
	if bytes.Contains(enc[0].Data, []byte(secret)) || string(enc[0].Metadata["encoding"]) != Encoding {
		t.Fatalf("remote encode returned %v", enc[0])
	}
	// What the server encrypted, the local codec opens.
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatalf("local decode: %v", err)
	}
	if string(dec[0].Data) != `"`+secret+`"` {
		t.Errorf("decoded %q", dec[0].Data)
	}

	resp, body := post(t, srv.URL+"/decode", []byte(`{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"bm9wZQ=="},"data":"AAAA"}]}`),
		map[string]string{"Authorization": "Bearer " + token})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `key id "nope"`) {
		t.Errorf("unknown key id: status %d body %q; want 400 naming the key id", resp.StatusCode, body)
	}
}
