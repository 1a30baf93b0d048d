package codec

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// ErrNoKey is returned by LoadKey when neither the file nor the variable is
// set: the caller runs without encryption (or refuses to, if it requires it).
var ErrNoKey = errors.New("no codec key configured")

const keyFormats = "32 raw bytes, 64 hex characters, or base64 of 32 bytes (make one with: openssl rand -hex 32)"

// LoadKey reads the payload key from file or, when file is "", from the
// environment variable envVar. Both hold 32 raw bytes, 64 hex characters or
// base64 of 32 bytes; a trailing newline is fine. The key id is the first 8
// hex characters of the key's SHA-256, so a rotated key shows up as a new id
// in payload metadata without revealing the key. Errors never quote the key.
func LoadKey(file, envVar string) ([]byte, string, error) {
	var (
		data   []byte
		source string
	)
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("codec key file %s: %w", file, err)
		}
		data, source = b, "codec key file "+file
	case envVar != "" && os.Getenv(envVar) != "":
		data, source = []byte(os.Getenv(envVar)), "environment variable "+envVar
	default:
		return nil, "", fmt.Errorf("%w (set a key file or the environment variable %s)", ErrNoKey, envVar)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", source, err)
	}
	return key, KeyID(key), nil
}

// KeyID is the id LoadKey gives key: the first 8 hex characters of its
// SHA-256.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

func parseKey(data []byte) ([]byte, error) {
	// Exactly 32 bytes is a raw key even if its last byte happens to be a
	// newline; otherwise drop one trailing line end (echo, editors).
	if len(data) == KeySize {
		return bytes.Clone(data), nil
	}
	trimmed := bytes.TrimSuffix(data, []byte("\n"))
	trimmed = bytes.TrimSuffix(trimmed, []byte("\r"))
	if len(trimmed) == KeySize {
		return bytes.Clone(trimmed), nil
	}
	text := bytes.TrimSpace(trimmed)
	if len(text) == 2*KeySize {
		key := make([]byte, KeySize)
		if _, err := hex.Decode(key, text); err == nil {
			return key, nil
		}
		return nil, fmt.Errorf("64 characters that are not hex; want %s", keyFormats)
	}
	if len(text) == 0 {
		return nil, fmt.Errorf("empty; want %s", keyFormats)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(string(text)); err == nil {
			if len(key) == KeySize {
				return key, nil
			}
			return nil, fmt.Errorf("base64 of %d bytes; want %s", len(key), keyFormats)
		}
	}
	return nil, fmt.Errorf("%d bytes that are neither a raw key, hex nor base64; want %s", len(data), keyFormats)
}
