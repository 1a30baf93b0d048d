package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"

	"github.com/drillship/drillship/codec"
)

// Defaults match the temporal CLI and a local dev server.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// ClientConfig is where and how to reach Temporal. It names things as the
// temporal CLI does and reads the same places, so one configuration serves
// both tools: flags (--address --namespace --api-key --tls --tls-cert-path
// ...), environment variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
// TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_GRPC_META_*), and a profile of
// the CLI's config file (temporal.toml, chosen by --config-file or
// TEMPORAL_CONFIG_FILE and --profile or TEMPORAL_PROFILE), in that order of
// precedence, then the defaults.
type ClientConfig struct {
	Address, Namespace, APIKey string
	// TLS asks for TLS; TLSDisabled refuses it (--tls=false, TEMPORAL_TLS=false,
	// a profile's tls.disabled) even where an API key would imply it.
	TLS, TLSDisabled                                  bool
	TLSCertPath, TLSKeyPath, TLSCAPath, TLSServerName string
	// PEM given inline (a profile's tls.*_data, TEMPORAL_TLS_*_DATA) in
	// place of the file of the same name.
	TLSCertData, TLSKeyData, TLSCAData string
	TLSDisableHostVerification         bool
	// GRPCMeta are gRPC headers sent with every call.
	GRPCMeta map[string]string
	// CodecKeyFile (or DRILLSHIP_CODEC_KEY) turns on AES-GCM encryption of
	// every payload; without either, payloads are plain.
	CodecKeyFile string
	// Profile and ConfigFile name the profile that was read and its file;
	// empty when no profile applied.
	Profile, ConfigFile string
	// ProfileCodec is a profile's remote codec endpoint, which drillship
	// does not use (it encrypts locally); Options warns of it.
	ProfileCodec string
	// MetricsHandler receives the SDK's metrics (the worker's --metrics);
	// nil: none.
	MetricsHandler client.MetricsHandler

	// loadErr is a config file or profile that could not be read; Options
	// returns it, so that callers of ClientConfigFrom need not.
	loadErr error
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

// Err is the config file or profile that could not be read, if any: a
// configuration error, not a failure to connect.
func (c ClientConfig) Err() error { return c.loadErr }

// tlsWanted reports whether the connection must use TLS: asked for, implied
// by any TLS setting (as the temporal CLI does), or by an API key, which
// Temporal Cloud only accepts over TLS; unless TLS was turned off.
func (c ClientConfig) tlsWanted() bool {
	if c.TLSDisabled {
		return false
	}
	return c.TLS || c.APIKey != "" || c.TLSCertPath != "" || c.TLSKeyPath != "" ||
		c.TLSCAPath != "" || c.TLSServerName != "" || c.TLSCertData != "" || c.TLSKeyData != "" ||
		c.TLSCAData != "" || c.TLSDisableHostVerification
}

// Options turns the config into SDK client options, reading and checking the
// certificate files now so that a bad path fails before any connection. An
// empty Address or Namespace takes the default; a nil logger means
// slog.Default().
func (c ClientConfig) Options(logger *slog.Logger) (client.Options, error) {
	if c.loadErr != nil {
		return client.Options{}, c.loadErr
	}
	if logger == nil {
		logger = slog.Default()
	}
	if c.ProfileCodec != "" {
		logger.Warn("temporal config: the profile's codec endpoint is not used; drillship encrypts payloads itself (--codec-key-file)",
			"profile", c.Profile, "file", c.ConfigFile, "endpoint", c.ProfileCodec)
	}
	opts := client.Options{
		HostPort:  c.Address,
		Namespace: c.Namespace,
		Logger:    sdklog.NewStructuredLogger(logger),
	}
	if c.MetricsHandler != nil {
		opts.MetricsHandler = c.MetricsHandler
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
	if len(c.GRPCMeta) > 0 {
		opts.HeadersProvider = fixedHeaders(c.GRPCMeta)
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

// Where each TLS setting comes from, for messages: the flag, its
// environment variable and the profile key.
const (
	srcCert = "--tls-cert-path (TEMPORAL_TLS_CLIENT_CERT_PATH, profile tls.client_cert_path)"
	srcKey  = "--tls-key-path (TEMPORAL_TLS_CLIENT_KEY_PATH, profile tls.client_key_path)"
	srcCA   = "--tls-ca-path (TEMPORAL_TLS_SERVER_CA_CERT_PATH, profile tls.server_ca_cert_path)"
)

// pem returns the PEM of one setting given as a file or inline, not both.
func pemOf(src, path, data string) ([]byte, error) {
	switch {
	case path != "" && data != "":
		return nil, fmt.Errorf("%s and its inline *_data are both set: give one", src)
	case data != "":
		return []byte(data), nil
	case path != "":
		return readFlagFile(src, path)
	}
	return nil, nil
}

func (c ClientConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName, InsecureSkipVerify: c.TLSDisableHostVerification}
	hasCert, hasKey := c.TLSCertPath != "" || c.TLSCertData != "", c.TLSKeyPath != "" || c.TLSKeyData != ""
	switch {
	case hasCert && !hasKey:
		return nil, fmt.Errorf("%s is set but %s is not: a client certificate needs both", srcCert, srcKey)
	case hasKey && !hasCert:
		return nil, fmt.Errorf("%s is set but %s is not: a client certificate needs both", srcKey, srcCert)
	case hasCert:
		certPEM, err := pemOf(srcCert, c.TLSCertPath, c.TLSCertData)
		if err != nil {
			return nil, err
		}
		keyPEM, err := pemOf(srcKey, c.TLSKeyPath, c.TLSKeyData)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s %s and %s %s: not a matching PEM certificate and key: %w",
				srcCert, orInline(c.TLSCertPath), srcKey, orInline(c.TLSKeyPath), err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	caPEM, err := pemOf(srcCA, c.TLSCAPath, c.TLSCAData)
	if err != nil {
		return nil, err
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%s %s: no PEM certificate found", srcCA, orInline(c.TLSCAPath))
		}
		cfg.RootCAs = pool
	}
	// Without a CA, RootCAs stays nil: the system roots verify the server,
	// which is right for Temporal Cloud.
	return cfg, nil
}

func orInline(path string) string {
	if path == "" {
		return "(inline)"
	}
	return path
}

func readFlagFile(flag, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return b, nil
}

// fixedHeaders sends the same gRPC metadata with every call.
type fixedHeaders map[string]string

func (h fixedHeaders) GetHeaders(context.Context) (map[string]string, error) { return h, nil }

// Dial connects to the Temporal frontend described by c; the SDK checks the
// server answers before it returns.
func Dial(ctx context.Context, c ClientConfig, logger *slog.Logger) (client.Client, error) {
	opts, err := c.Options(logger)
	if err != nil {
		return nil, fmt.Errorf("temporal client: %w", err)
	}
	cl, err := client.DialContext(ctx, opts)
	if err != nil {
		from := ""
		if c.Profile != "" {
			from = fmt.Sprintf(" (profile %q of %s)", c.Profile, c.ConfigFile)
		}
		return nil, fmt.Errorf("temporal client: dial %s namespace %q%s: %w", opts.HostPort, opts.Namespace, from, err)
	}
	return cl, nil
}

// Flag names shared by ClientFlags and ClientConfigFrom.
const (
	flagAddress            = "address"
	flagNamespace          = "namespace"
	flagAPIKey             = "api-key"
	flagTLS                = "tls"
	flagTLSCertPath        = "tls-cert-path"
	flagTLSKeyPath         = "tls-key-path"
	flagTLSCAPath          = "tls-ca-path"
	flagTLSServerName      = "tls-server-name"
	flagTLSNoHostVerify    = "tls-disable-host-verification"
	flagProfile            = "profile"
	flagConfigFile         = "config-file"
	flagCodecKeyFile       = "codec-key-file"
	envConfigFile          = "TEMPORAL_CONFIG_FILE"
	envProfile             = "TEMPORAL_PROFILE"
	defaultProfileName     = envconfig.DefaultConfigFileProfile
	configFileDefaultUsage = "$HOME/.config/temporalio/temporal.toml on Linux, as the temporal CLI"
)

// ClientFlags are the urfave/cli flags that fill a ClientConfig. Address and
// namespace have no flag default: a profile's value must not be hidden by
// one, so the defaults apply last, in ClientConfigFrom.
func ClientFlags() []cli.Flag {
	const category = "Temporal connection"
	return []cli.Flag{
		&cli.StringFlag{Name: flagAddress, EnvVars: []string{"TEMPORAL_ADDRESS"}, Category: category,
			Usage: "Temporal frontend host:port (default: the profile's, else " + DefaultAddress + ")"},
		&cli.StringFlag{Name: flagNamespace, EnvVars: []string{"TEMPORAL_NAMESPACE"}, Category: category,
			Usage: "Temporal namespace (default: the profile's, else " + DefaultNamespace + ")"},
		&cli.StringFlag{Name: flagAPIKey, EnvVars: []string{"TEMPORAL_API_KEY"}, Category: category,
			Usage: "API key sent as a bearer token (turns TLS on)"},
		&cli.BoolFlag{Name: flagTLS, EnvVars: []string{"TEMPORAL_TLS"}, Category: category,
			Usage: "connect with TLS (implied by an API key or any --tls-* flag; --tls=false turns it off)"},
		&cli.StringFlag{Name: flagTLSCertPath, EnvVars: []string{"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CERT"}, Category: category,
			Usage: "PEM client certificate for mTLS (needs --tls-key-path)"},
		&cli.StringFlag{Name: flagTLSKeyPath, EnvVars: []string{"TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_KEY"}, Category: category,
			Usage: "PEM private key of the client certificate"},
		&cli.StringFlag{Name: flagTLSCAPath, EnvVars: []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CA"}, Category: category,
			Usage: "PEM CA certificates that verify the server (default: system roots)"},
		&cli.StringFlag{Name: flagTLSServerName, EnvVars: []string{"TEMPORAL_TLS_SERVER_NAME"}, Category: category,
			Usage: "server name to verify the server certificate against"},
		&cli.BoolFlag{Name: flagTLSNoHostVerify, EnvVars: []string{"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"}, Category: category,
			Usage: "do not verify the server's certificate name"},
		&cli.StringFlag{Name: flagProfile, EnvVars: []string{envProfile}, Category: category,
			Usage: "profile of the temporal CLI's config file to read (default: " + defaultProfileName + ", if the file has it)"},
		&cli.StringFlag{Name: flagConfigFile, EnvVars: []string{envConfigFile}, Category: category,
			Usage: "the temporal CLI's TOML config file (default: " + configFileDefaultUsage + ")"},
		&cli.StringFlag{Name: flagCodecKeyFile, EnvVars: []string{"DRILLSHIP_CODEC_KEY_FILE"}, Category: category,
			Usage: "encrypt every workflow payload with the AES-256 key in this file (or set " + CodecKeyEnv + ")"},
	}
}

// ClientConfigFrom resolves the connection settings: flags, then their
// environment variables, then the profile, then the defaults. A config file
// or profile that cannot be read is returned by Options (and so by Dial).
func ClientConfigFrom(c *cli.Context) ClientConfig {
	cfg := LoadProfile(c.String(flagConfigFile), c.String(flagProfile), envconfig.EnvLookupOS)
	str := func(name string, dst *string) {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	str(flagAddress, &cfg.Address)
	str(flagNamespace, &cfg.Namespace)
	str(flagAPIKey, &cfg.APIKey)
	str(flagTLSServerName, &cfg.TLSServerName)
	// A file given here replaces the same PEM given inline below it.
	for _, f := range []struct {
		name       string
		path, data *string
	}{{flagTLSCertPath, &cfg.TLSCertPath, &cfg.TLSCertData}, {flagTLSKeyPath, &cfg.TLSKeyPath, &cfg.TLSKeyData}, {flagTLSCAPath, &cfg.TLSCAPath, &cfg.TLSCAData}} {
		if c.IsSet(f.name) && c.String(f.name) != "" {
			*f.path, *f.data = c.String(f.name), ""
		}
	}
	if c.IsSet(flagTLS) {
		cfg.TLS = c.Bool(flagTLS)
		cfg.TLSDisabled = !cfg.TLS
	}
	if c.IsSet(flagTLSNoHostVerify) {
		cfg.TLSDisableHostVerification = c.Bool(flagTLSNoHostVerify)
	}
	cfg.CodecKeyFile = c.String(flagCodecKeyFile)
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	return cfg
}

// LoadProfile reads a profile of the temporal CLI's config file and lays the
// environment over it, as the temporal CLI does. file "" means
// TEMPORAL_CONFIG_FILE, else the CLI's default path; a missing file is no
// error (nothing applies). profile "" means TEMPORAL_PROFILE, else
// "default"; a profile named but absent is an error, kept for Options.
func LoadProfile(file, profile string, env envconfig.EnvLookup) ClientConfig {
	var cfg ClientConfig
	if file == "" {
		file, _ = env.LookupEnv(envConfigFile)
	}
	if file == "" {
		var err error
		if file, err = envconfig.DefaultConfigFilePath(); err != nil {
			file = "" // no home directory: no default file
		}
	}
	if profile == "" {
		profile, _ = env.LookupEnv(envProfile)
	}
	named := profile != ""
	if !named {
		profile = defaultProfileName
	}
	var prof envconfig.ClientConfigProfile
	if file != "" {
		conf, err := envconfig.LoadClientConfig(envconfig.LoadClientConfigOptions{ConfigFilePath: file, EnvLookup: env})
		if err != nil {
			cfg.loadErr = fmt.Errorf("temporal config file %s: %w", file, err)
			return cfg
		}
		if p := conf.Profiles[profile]; p != nil {
			prof = *p
			cfg.Profile, cfg.ConfigFile = profile, file
		} else if named {
			have := make([]string, 0, len(conf.Profiles))
			for name := range conf.Profiles {
				have = append(have, name)
			}
			sort.Strings(have)
			cfg.loadErr = fmt.Errorf("temporal config file %s: no profile %q (profiles there: %s)", file, profile, strings.Join(have, ", "))
			return cfg
		}
	} else if named {
		cfg.loadErr = fmt.Errorf("profile %q: no config file (set --config-file or %s)", profile, envConfigFile)
		return cfg
	}
	if err := prof.ApplyEnvVars(env); err != nil {
		cfg.loadErr = fmt.Errorf("temporal environment variables: %w", err)
		return cfg
	}
	cfg.Address, cfg.Namespace, cfg.APIKey = prof.Address, prof.Namespace, prof.APIKey
	if t := prof.TLS; t != nil {
		cfg.TLS, cfg.TLSDisabled = !t.Disabled, t.Disabled
		cfg.TLSCertPath, cfg.TLSKeyPath, cfg.TLSCAPath = t.ClientCertPath, t.ClientKeyPath, t.ServerCACertPath
		cfg.TLSCertData, cfg.TLSKeyData, cfg.TLSCAData = string(t.ClientCertData), string(t.ClientKeyData), string(t.ServerCACertData)
		cfg.TLSServerName, cfg.TLSDisableHostVerification = t.ServerName, t.DisableHostVerification
	}
	cfg.GRPCMeta = prof.GRPCMeta
	if prof.Codec != nil {
		cfg.ProfileCodec = prof.Codec.Endpoint
	}
	return cfg
}
