package codec

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

const secret = "hunter2-db-password-7f3a"

type input struct {
	Service  string `json:"service"`
	Password string `json:"password"`
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func newCodec(t *testing.T, key []byte) converter.PayloadCodec {
	t.Helper()
	c, err := New(key, KeyID(key))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestRoundTripEncryptsAndRestores(t *testing.T) {
	key := testKey(1)
	dc := DataConverter(newCodec(t, key))
	in := input{Service: "web", Password: secret}

	p, err := dc.ToPayload(in)
	if err != nil {
		t.Fatalf("ToPayload: %v", err)
	}
	if got := string(p.Metadata[converter.MetadataEncoding]); got != Encoding {
		t.Errorf("encoding metadata = %q, want %q", got, Encoding)
	}
	if got := string(p.Metadata[MetadataKeyID]); got != KeyID(key) {
		t.Errorf("key id metadata = %q, want %q", got, KeyID(key))
	}
	if len(p.Metadata) != 2 {
		t.Errorf("metadata has %d entries, want only encoding and key id: %v", len(p.Metadata), p.Metadata)
	}
	for _, leak := range []string{secret, "web", "json/plain", "password"} {
		if bytes.Contains(p.Data, []byte(leak)) {
			t.Errorf("ciphertext contains %q", leak)
		}
	}

	var out input
	if err := dc.FromPayload(p, &out); err != nil {
		t.Fatalf("FromPayload: %v", err)
	}
	if out != in {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}

	// A fresh nonce per payload: the same value never encrypts the same way.
	p2, err := dc.ToPayload(in)
	if err != nil {
		t.Fatalf("ToPayload: %v", err)
	}
	if bytes.Equal(p.Data, p2.Data) || bytes.Equal(p.Data[:12], p2.Data[:12]) {
		t.Error("two encryptions of the same value share ciphertext or nonce")
	}
}

func TestDecodePassesPlainPayloadsThrough(t *testing.T) {
	c := newCodec(t, testKey(1))
	plain, err := converter.GetDefaultDataConverter().ToPayload("not secret")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encode([]*commonpb.Payload{{Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Decode([]*commonpb.Payload{plain, enc[0]})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if out[0] != plain {
		t.Error("plain payload was not passed through unchanged")
	}
	if string(out[1].Data) != "x" || out[1].Metadata != nil {
		t.Errorf("encrypted payload decoded to %v, want data x and no metadata", out[1])
	}
}

func TestTamperedCiphertextFails(t *testing.T) {
	c := newCodec(t, testKey(1))
	enc, err := c.Encode([]*commonpb.Payload{{Data: []byte(secret)}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc[0].Data {
		bad := &commonpb.Payload{Metadata: enc[0].Metadata, Data: bytes.Clone(enc[0].Data)}
		bad.Data[i] ^= 0x01
		_, err := c.Decode([]*commonpb.Payload{bad})
		if err == nil || !strings.Contains(err.Error(), "does not decrypt") {
			t.Fatalf("byte %d flipped: err = %v, want a 'does not decrypt' error", i, err)
		}
	}
	short := &commonpb.Payload{Metadata: enc[0].Metadata, Data: enc[0].Data[:20]}
	if _, err := c.Decode([]*commonpb.Payload{short}); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("truncated payload: err = %v, want 'too short'", err)
	}
}

func TestWrongKeyFailsClearly(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	enc, err := newCodec(t, k1).Encode([]*commonpb.Payload{{Data: []byte(secret)}})
	if err != nil {
		t.Fatal(err)
	}

	_, err = newCodec(t, k2).Decode(enc)
	if err == nil {
		t.Fatal("decode with another key succeeded")
	}
	for _, want := range []string{KeyID(k1), KeyID(k2), "load the key that encrypted it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// Another key under the same id (a mistake when ids are chosen by hand)
	// fails authentication rather than yielding garbage.
	same, err := New(k2, KeyID(k1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := same.Decode(enc); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Errorf("same id, other key: err = %v, want 'does not decrypt'", err)
	}

	// Relabelling with another id does not get past the authenticated id.
	relabelled, err := New(k1, "other-id")
	if err != nil {
		t.Fatal(err)
	}
	moved := &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding), MetadataKeyID: []byte("other-id")}, Data: enc[0].Data}
	if _, err := relabelled.Decode([]*commonpb.Payload{moved}); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Errorf("relabelled key id: err = %v, want 'does not decrypt'", err)
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	if _, err := New(make([]byte, 16), "k"); err == nil || !strings.Contains(err.Error(), "exactly 32") {
		t.Errorf("16-byte key: err = %v, want 'exactly 32'", err)
	}
	if _, err := New(testKey(1), ""); err == nil || !strings.Contains(err.Error(), "key id is empty") {
		t.Errorf("empty id: err = %v, want 'key id is empty'", err)
	}
}

func TestLoadKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDE\n") // raw, ends in a newline byte
	sum := sha256.Sum256(key)
	wantID := hex.EncodeToString(sum[:])[:8]
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const env = "DRILLSHIP_TEST_CODEC_KEY"

	cases := []struct {
		name string
		file []byte // nil: no file
		env  string
	}{
		{name: "raw file", file: key},
		{name: "raw file with newline", file: append(bytes.Clone(key), '\n')},
		{name: "hex file with newline", file: []byte(hex.EncodeToString(key) + "\n")},
		{name: "hex file upper case", file: []byte(strings.ToUpper(hex.EncodeToString(key)))},
		{name: "base64 file with CRLF", file: []byte(base64.StdEncoding.EncodeToString(key) + "\r\n")},
		{name: "hex env", env: hex.EncodeToString(key)},
		{name: "base64 env", env: base64.StdEncoding.EncodeToString(key)},
		{name: "unpadded url base64 env", env: base64.RawURLEncoding.EncodeToString(key)},
		{name: "file wins over env", file: []byte(hex.EncodeToString(key)), env: hex.EncodeToString(testKey(9))},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(env, tc.env)
			file := ""
			if tc.file != nil {
				file = write(strings.Repeat("k", i+1), tc.file)
			}
			got, id, err := LoadKey(file, env)
			if err != nil {
				t.Fatalf("LoadKey: %v", err)
			}
			if !bytes.Equal(got, key) {
				t.Errorf("key = %x, want %x", got, key)
			}
			if id != wantID {
				t.Errorf("id = %q, want %q", id, wantID)
			}
		})
	}
}

func TestLoadKeyErrors(t *testing.T) {
	const env = "DRILLSHIP_TEST_CODEC_KEY"
	dir := t.TempDir()
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("s3cr3t-but-short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badHex := filepath.Join(dir, "bad-hex.key")
	if err := os.WriteFile(badHex, []byte(strings.Repeat("zz", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.key")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file, env string
		want            []string
	}{
		{name: "missing file", file: filepath.Join(dir, "nope"), want: []string{"codec key file " + filepath.Join(dir, "nope"), "no such file"}},
		{name: "short file", file: short, want: []string{"codec key file " + short, "64 hex characters", "base64 of 32 bytes"}},
		{name: "bad hex", file: badHex, want: []string{"codec key file " + badHex, "not hex"}},
		{name: "empty file", file: empty, want: []string{"codec key file " + empty, "empty"}},
		{name: "bad env", env: base64.StdEncoding.EncodeToString(make([]byte, 16)), want: []string{"environment variable " + env, "base64 of 16 bytes", "32 raw bytes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(env, tc.env)
			key, id, err := LoadKey(tc.file, env)
			if err == nil {
				t.Fatalf("LoadKey = %x, %q; want an error", key, id)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error quotes the key material: %q", err)
			}
		})
	}

	t.Run("nothing configured", func(t *testing.T) {
		t.Setenv(env, "")
		_, _, err := LoadKey("", env)
		if !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), env) {
			t.Errorf("err = %v, want ErrNoKey naming %s", err, env)
		}
	})
}
