package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"

	"github.com/drillship/drillship/codec"
)

// Defaults match the temporal CLI and a local dev server.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// ClientConfig names things as the temporal CLI does (flags --address
// --namespace --api-key --tls --tls-cert-path --tls-key-path --tls-ca-path
// --tls-server-name; env TEMPORAL_ADDRESS TEMPORAL_NAMESPACE TEMPORAL_API_KEY
// TEMPORAL_TLS TEMPORAL_TLS_CERT TEMPORAL_TLS_KEY TEMPORAL_TLS_CA
// TEMPORAL_TLS_SERVER_NAME), so one environment serves both tools.
type ClientConfig struct {
	Address, Namespace, APIKey                        string
	TLS                                               bool
	TLSCertPath, TLSKeyPath, TLSCAPath, TLSServerName string
	// CodecKeyFile (or DRILLSHIP_CODEC_KEY) turns on AES-GCM encryption of
	// every payload; without either, payloads are plain.
	CodecKeyFile string
}

// CodecKeyEnv holds the payload key itself (hex or base64 of 32 bytes).
const CodecKeyEnv = "DRILLSHIP_CODEC_KEY"

// DataConverter returns the encrypting converter when a key is configured,
// else nil (the SDK default).
func (c ClientConfig) DataConverter() (converter.DataConverter, error) {
	key, id, err := codec.LoadKey(c.CodecKeyFile, CodecKeyEnv)
	if errors.Is(err, codec.ErrNoKey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pc, err := codec.New(key, id)
	if err != nil {
		return nil, err
	}
	return codec.DataConverter(pc), nil
}

// tlsWanted reports whether the connection must use TLS: asked for, implied
// by any TLS setting (as the temporal CLI does), or by an API key, which
// Temporal Cloud only accepts over TLS.
func (c ClientConfig) tlsWanted() bool {
	return c.TLS || c.APIKey != "" || c.TLSCertPath != "" || c.TLSKeyPath != "" ||
		c.TLSCAPath != "" || c.TLSServerName != ""
}

// Options turns the config into SDK client options, reading and checking the
// certificate files now so that a bad path fails before any connection. An
// empty Address or Namespace takes the default; a nil logger means
// slog.Default().
func (c ClientConfig) Options(logger *slog.Logger) (client.Options, error) {
	if logger == nil {
		logger = slog.Default()
	}
	opts := client.Options{
		HostPort:  c.Address,
		Namespace: c.Namespace,
		Logger:    sdklog.NewStructuredLogger(logger),
	}
	if opts.HostPort == "" {
		opts.HostPort = DefaultAddress
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if c.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(c.APIKey)
	}
	dc, err := c.DataConverter()
	if err != nil {
		return client.Options{}, err
	}
	if dc != nil {
		opts.DataConverter = dc
		opts.FailureConverter = codec.FailureConverter(dc)
	}
	if !c.tlsWanted() {
		return opts, nil
	}
	cfg, err := c.tlsConfig()
	if err != nil {
		return client.Options{}, err
	}
	opts.ConnectionOptions.TLS = cfg
	return opts, nil
}

func (c ClientConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	switch {
	case c.TLSCertPath != "" && c.TLSKeyPath == "":
		return nil, errors.New("--tls-cert-path (TEMPORAL_TLS_CERT) is set but --tls-key-path (TEMPORAL_TLS_KEY) is not: a client certificate needs both")
	case c.TLSKeyPath != "" && c.TLSCertPath == "":
		return nil, errors.New("--tls-key-path (TEMPORAL_TLS_KEY) is set but --tls-cert-path (TEMPORAL_TLS_CERT) is not: a client certificate needs both")
	case c.TLSCertPath != "":
		certPEM, err := readFlagFile("--tls-cert-path", c.TLSCertPath)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readFlagFile("--tls-key-path", c.TLSKeyPath)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-path %s and --tls-key-path %s: not a matching PEM certificate and key: %w",
				c.TLSCertPath, c.TLSKeyPath, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if c.TLSCAPath != "" {
		caPEM, err := readFlagFile("--tls-ca-path", c.TLSCAPath)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("--tls-ca-path %s: no PEM certificate found", c.TLSCAPath)
		}
		cfg.RootCAs = pool
	}
	// Without --tls-ca-path, RootCAs stays nil: the system roots verify the
	// server, which is right for Temporal Cloud.
	return cfg, nil
}

func readFlagFile(flag, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return b, nil
}

// Dial connects to the Temporal frontend described by c; the SDK checks the
// server answers before it returns.
func Dial(ctx context.Context, c ClientConfig, logger *slog.Logger) (client.Client, error) {
	opts, err := c.Options(logger)
	if err != nil {
		return nil, fmt.Errorf("temporal client: %w", err)
	}
	cl, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("temporal client: dial %s namespace %q: %w", opts.HostPort, opts.Namespace, err)
	}
	return cl, nil
}

// Flag names shared by ClientFlags and ClientConfigFrom.
const (
	flagAddress       = "address"
	flagNamespace     = "namespace"
	flagAPIKey        = "api-key"
	flagTLS           = "tls"
	flagTLSCertPath   = "tls-cert-path"
	flagTLSKeyPath    = "tls-key-path"
	flagTLSCAPath     = "tls-ca-path"
	flagTLSServerName = "tls-server-name"
	flagCodecKeyFile  = "codec-key-file"
)

// ClientFlags are the urfave/cli flags that fill a ClientConfig.
func ClientFlags() []cli.Flag {
	const category = "Temporal connection"
	return []cli.Flag{
		&cli.StringFlag{Name: flagAddress, Value: DefaultAddress, EnvVars: []string{"TEMPORAL_ADDRESS"}, Category: category,
			Usage: "Temporal frontend host:port"},
		&cli.StringFlag{Name: flagNamespace, Value: DefaultNamespace, EnvVars: []string{"TEMPORAL_NAMESPACE"}, Category: category,
			Usage: "Temporal namespace"},
		&cli.StringFlag{Name: flagAPIKey, EnvVars: []string{"TEMPORAL_API_KEY"}, Category: category,
			Usage: "API key sent as a bearer token (turns TLS on)"},
		&cli.BoolFlag{Name: flagTLS, EnvVars: []string{"TEMPORAL_TLS"}, Category: category,
			Usage: "connect with TLS (implied by any other --tls-* flag)"},
		&cli.StringFlag{Name: flagTLSCertPath, EnvVars: []string{"TEMPORAL_TLS_CERT"}, Category: category,
			Usage: "PEM client certificate for mTLS (needs --tls-key-path)"},
		&cli.StringFlag{Name: flagTLSKeyPath, EnvVars: []string{"TEMPORAL_TLS_KEY"}, Category: category,
			Usage: "PEM private key of the client certificate"},
		&cli.StringFlag{Name: flagTLSCAPath, EnvVars: []string{"TEMPORAL_TLS_CA"}, Category: category,
			Usage: "PEM CA certificates that verify the server (default: system roots)"},
		&cli.StringFlag{Name: flagTLSServerName, EnvVars: []string{"TEMPORAL_TLS_SERVER_NAME"}, Category: category,
			Usage: "server name to verify the server certificate against"},
		&cli.StringFlag{Name: flagCodecKeyFile, EnvVars: []string{"DRILLSHIP_CODEC_KEY_FILE"}, Category: category,
			Usage: "encrypt every workflow payload with the AES-256 key in this file (or set " + CodecKeyEnv + ")"},
	}
}

// ClientConfigFrom reads the flags of ClientFlags from c.
func ClientConfigFrom(c *cli.Context) ClientConfig {
	return ClientConfig{
		Address:       c.String(flagAddress),
		Namespace:     c.String(flagNamespace),
		APIKey:        c.String(flagAPIKey),
		TLS:           c.Bool(flagTLS),
		TLSCertPath:   c.String(flagTLSCertPath),
		TLSKeyPath:    c.String(flagTLSKeyPath),
		TLSCAPath:     c.String(flagTLSCAPath),
		TLSServerName: c.String(flagTLSServerName),
		CodecKeyFile:  c.String(flagCodecKeyFile),
	}
}
