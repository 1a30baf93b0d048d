// Package codec encrypts every Temporal payload drillship writes (workflow
// and activity inputs and results, memos, signals, failures) with AES-256-GCM,
// so that the Temporal server and its database only ever hold ciphertext. It
// also serves the same codec over HTTP for the Temporal UI and CLI, so that
// people holding the codec server's token can read decrypted payloads.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata written on every encrypted payload.
const (
	// Encoding is the value of the "encoding" metadata of an encrypted payload.
	Encoding = "binary/encrypted"
	// MetadataKeyID names the key that encrypted the payload.
	MetadataKeyID = "encryption-key-id"
)

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// aesCodec seals the whole original payload (metadata and data), so that
// neither the value nor its type/encoding leaks to the server.
type aesCodec struct {
	keyID string
	aead  cipher.AEAD
}

// New returns a codec that encrypts with key (32 bytes, AES-256-GCM) and
// labels payloads with keyID. Decode passes payloads that are not encrypted
// through unchanged, so histories written before encryption was turned on
// stay readable.
func New(key []byte, keyID string) (converter.PayloadCodec, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("codec: key is %d bytes; AES-256 needs exactly %d", len(key), KeySize)
	}
	if keyID == "" {
		return nil, errors.New("codec: key id is empty; give the key a name (LoadKey derives one from the key)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("codec: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("codec: %w", err)
	}
	return &aesCodec{keyID: keyID, aead: aead}, nil
}

// Encode encrypts each payload under a fresh random nonce.
func (c *aesCodec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: marshal payload %d: %w", i, err)
		}
		nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(plain)+c.aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("codec: read random nonce: %w", err)
		}
		// The key id is authenticated data: relabelling a payload with
		// another key id makes it fail to open rather than mislead.
		sealed := c.aead.Seal(nonce, nonce, plain, []byte(c.keyID))
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(Encoding),
				MetadataKeyID:              []byte(c.keyID),
			},
			Data: sealed,
		}
	}
	return out, nil
}

// Decode decrypts payloads this codec's key encrypted and passes the others
// through.
func (c *aesCodec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		if id != c.keyID {
			return payloads, fmt.Errorf("codec: payload %d was encrypted with key id %q but this codec holds key id %q: load the key that encrypted it", i, id, c.keyID)
		}
		data := p.GetData()
		if len(data) < c.aead.NonceSize()+c.aead.Overhead() {
			return payloads, fmt.Errorf("codec: payload %d (key id %q) is %d bytes, too short to be encrypted data", i, id, len(data))
		}
		nonce, sealed := data[:c.aead.NonceSize()], data[c.aead.NonceSize():]
		plain, err := c.aead.Open(nil, nonce, sealed, []byte(id))
		if err != nil {
			return payloads, fmt.Errorf("codec: payload %d (key id %q) does not decrypt: it was altered or encrypted with another key of the same id: %w", i, id, err)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return payloads, fmt.Errorf("codec: payload %d (key id %q) decrypts to no payload: %w", i, id, err)
		}
		out[i] = &orig
	}
	return out, nil
}

// DataConverter is the SDK's default data converter with c applied to every
// payload; give it to client.Options.DataConverter of clients and workers.
func DataConverter(c converter.PayloadCodec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter makes failures carry their message and stack trace in an
// encoded payload instead of in clear text; give it to
// client.Options.FailureConverter together with DataConverter, since error
// messages often quote the inputs that were encrypted.
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}

// Memo encodes memo values with dc, ready for StartWorkflowOptions.Memo or
// ScheduleWorkflowAction.Memo. The SDK (v1.37) writes memos with its default
// converter and skips the codec, so a memo passed as is reaches the server in
// clear text; pre-encoded raw values are passed through as they are.
// Describe/list results decode them again with dc (FromPayload).
func Memo(dc converter.DataConverter, memo map[string]any) (map[string]any, error) {
	if memo == nil {
		return nil, nil
	}
	out := make(map[string]any, len(memo))
	for k, v := range memo {
		p, err := dc.ToPayload(v)
		if err != nil {
			return nil, fmt.Errorf("codec: memo %q: %w", k, err)
		}
		out[k] = converter.NewRawValue(p)
	}
	return out, nil
}
