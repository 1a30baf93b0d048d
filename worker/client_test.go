package worker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var quiet = slog.New(slog.DiscardHandler)

// parseFlags runs an app with ClientFlags on args and returns what
// ClientConfigFrom read.
func parseFlags(t *testing.T, args ...string) ClientConfig {
	t.Helper()
	var got ClientConfig
	app := &cli.App{Name: "drillship", Flags: ClientFlags(), Action: func(c *cli.Context) error {
		got = ClientConfigFrom(c)
		return nil
	}}
	if err := app.Run(append([]string{"drillship"}, args...)); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return got
}

var clientEnv = []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS",
	"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_NAME",
	"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
	"TEMPORAL_TLS_CLIENT_CERT_DATA", "TEMPORAL_TLS_CLIENT_KEY_DATA", "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
	"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "TEMPORAL_CODEC_ENDPOINT", "TEMPORAL_CODEC_AUTH",
	"TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE"}

// unsetClientEnv clears the connection's environment; the config file is
// one that does not exist, so a developer's own temporal.toml stays out.
func unsetClientEnv(t *testing.T) {
	for _, k := range clientEnv {
		t.Setenv(k, "") // restores the old value after the test
		os.Unsetenv(k)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TEMPORAL_GRPC_META_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", filepath.Join(t.TempDir(), "absent.toml"))
}

func TestClientFlagsDefaults(t *testing.T) {
	unsetClientEnv(t)
	got := parseFlags(t)
	want := ClientConfig{Address: "127.0.0.1:7233", Namespace: "default"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	opts, err := got.Options(quiet)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "127.0.0.1:7233" || opts.Namespace != "default" || opts.ConnectionOptions.TLS != nil || opts.Credentials != nil {
		t.Fatalf("options = host %q ns %q tls %v creds %v; want plain 127.0.0.1:7233 default",
			opts.HostPort, opts.Namespace, opts.ConnectionOptions.TLS, opts.Credentials)
	}
}

func TestClientFlagsFromEnvAndArgs(t *testing.T) {
	unsetClientEnv(t)
	t.Setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
	t.Setenv("TEMPORAL_NAMESPACE", "from-env")
	t.Setenv("TEMPORAL_API_KEY", "k-123")
	t.Setenv("TEMPORAL_TLS", "true")
	t.Setenv("TEMPORAL_TLS_CERT", "/env/cert.pem")
	t.Setenv("TEMPORAL_TLS_KEY", "/env/key.pem")
	t.Setenv("TEMPORAL_TLS_CA", "/env/ca.pem")
	t.Setenv("TEMPORAL_TLS_SERVER_NAME", "env.example")
	got := parseFlags(t, "--namespace", "from-flag", "--tls-ca-path", "/flag/ca.pem")
	want := ClientConfig{
		Address: "temporal.example:7233", Namespace: "from-flag", APIKey: "k-123", TLS: true,
		TLSCertPath: "/env/cert.pem", TLSKeyPath: "/env/key.pem", TLSCAPath: "/flag/ca.pem", TLSServerName: "env.example",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config = %+v\nwant     %+v", got, want)
	}
}

// pki holds a CA and a server and a client certificate it signed, written
// as PEM files.
type pki struct {
	ca                        *x509.Certificate
	caPath, certPath, keyPath string
	serverCert                tls.Certificate
	clientDER                 []byte
	otherKeyPath, notPEMPath  string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drillship test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, k *ecdsa.PrivateKey) []byte {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	serverKey, clientKey := key(), key()
	serverDER := leaf(2, "temporal.test", x509.ExtKeyUsageServerAuth, serverKey)
	clientDER := leaf(3, "drillship-worker", x509.ExtKeyUsageClientAuth, clientKey)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	return pki{
		ca:           ca,
		caPath:       write("ca.pem", "CERTIFICATE", caDER),
		certPath:     write("client.pem", "CERTIFICATE", clientDER),
		keyPath:      write("client-key.pem", "PRIVATE KEY", keyDER(clientKey)),
		serverCert:   tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey},
		clientDER:    clientDER,
		otherKeyPath: write("other-key.pem", "PRIVATE KEY", keyDER(key())),
		notPEMPath:   notPEM,
	}
}

func TestOptionsMutualTLS(t *testing.T) {
	p := newPKI(t)
	cfg := ClientConfig{Address: "temporal.test:7233", Namespace: "drills",
		TLSCertPath: p.certPath, TLSKeyPath: p.keyPath, TLSCAPath: p.caPath, TLSServerName: "temporal.test"}
	opts, err := cfg.Options(quiet)
	if err != nil {
		t.Fatalf("Options: %v", err)
	}
	tc := opts.ConnectionOptions.TLS
	if tc == nil {
		t.Fatal("TLS config is nil; cert paths must turn TLS on")
	}
	if len(tc.Certificates) != 1 || string(tc.Certificates[0].Certificate[0]) != string(p.clientDER) {
		t.Fatalf("client certificate not the one in %s", p.certPath)
	}
	if tc.ServerName != "temporal.test" {
		t.Errorf("ServerName = %q, want temporal.test", tc.ServerName)
	}
	if tc.RootCAs == nil || !tc.RootCAs.Equal(func() *x509.CertPool { cp := x509.NewCertPool(); cp.AddCert(p.ca); return cp }()) {
		t.Errorf("RootCAs does not hold exactly the CA from %s", p.caPath)
	}

	// A real handshake: the server requires a client cert from the CA, the
	// client verifies the server against the CA and the server name.
	srvCfg := &tls.Config{Certificates: []tls.Certificate{p.serverCert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: tc.RootCAs}
	l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan string, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			peer <- "accept: " + err.Error()
			return
		}
		defer conn.Close()
		tconn := conn.(*tls.Conn)
		if err := tconn.Handshake(); err != nil {
			peer <- "handshake: " + err.Error()
			return
		}
		peer <- tconn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()
	conn, err := tls.Dial("tcp", l.Addr().String(), tc)
	if err != nil {
		t.Fatalf("TLS dial with Options' config: %v", err)
	}
	conn.Close()
	if got := <-peer; got != "drillship-worker" {
		t.Fatalf("server saw client %q, want drillship-worker", got)
	}
}

func TestOptionsErrors(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	cases := []struct {
		name string
		cfg  ClientConfig
		want []string
	}{
		{"cert without key", ClientConfig{TLSCertPath: p.certPath}, []string{"--tls-cert-path", "--tls-key-path"}},
		{"key without cert", ClientConfig{TLSKeyPath: p.keyPath}, []string{"--tls-key-path", "--tls-cert-path"}},
		{"unreadable cert", ClientConfig{TLSCertPath: missing, TLSKeyPath: p.keyPath}, []string{"--tls-cert-path", missing}},
		{"unreadable key", ClientConfig{TLSCertPath: p.certPath, TLSKeyPath: missing}, []string{"--tls-key-path", missing}},
		{"unreadable CA", ClientConfig{TLSCAPath: missing}, []string{"--tls-ca-path", missing}},
		{"CA not PEM", ClientConfig{TLSCAPath: p.notPEMPath}, []string{"--tls-ca-path", p.notPEMPath}},
		{"key of another cert", ClientConfig{TLSCertPath: p.certPath, TLSKeyPath: p.otherKeyPath},
			[]string{"--tls-cert-path", "--tls-key-path", p.otherKeyPath}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Options(quiet)
			if err == nil {
				t.Fatalf("Options(%+v) = nil error, want one naming %v", tc.cfg, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestDialSendsAPIKeyOverTLS dials a TLS gRPC server that records what the
// SDK sends: an API key must arrive as a bearer token, and over TLS even
// though --tls was not given.
func TestDialSendsAPIKeyOverTLS(t *testing.T) {
	p := newPKI(t)
	var mu sync.Mutex
	var auth, methods []string
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.serverCert}})),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			md, _ := metadata.FromIncomingContext(stream.Context())
			mu.Lock()
			auth = append(auth, md.Get("authorization")...)
			m, _ := grpc.MethodFromServerStream(stream)
			methods = append(methods, m)
			mu.Unlock()
			// The SDK treats an unimplemented GetSystemInfo as an old
			// server and goes on.
			return status.Error(codes.Unimplemented, "test server")
		}),
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, ClientConfig{Address: l.Addr().String(), Namespace: "cloud-ns.acct",
		APIKey: "secret-key", TLSCAPath: p.caPath, TLSServerName: "temporal.test"}, quiet)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(auth) == 0 || auth[0] != "Bearer secret-key" {
		t.Errorf("authorization sent = %q, want [\"Bearer secret-key\"]", auth)
	}
	if len(methods) == 0 || methods[0] != "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo" {
		t.Errorf("methods called = %q, want GetSystemInfo first", methods)
	}
}

func TestAPIKeyImpliesTLS(t *testing.T) {
	opts, err := ClientConfig{APIKey: "k"}.Options(quiet)
	if err != nil {
		t.Fatal(err)
	}
	if opts.ConnectionOptions.TLS == nil || opts.Credentials == nil {
		t.Fatalf("API key without --tls: TLS %v, credentials %v; want both set", opts.ConnectionOptions.TLS, opts.Credentials)
	}
	if opts.ConnectionOptions.TLS.RootCAs != nil {
		t.Errorf("RootCAs set without --tls-ca-path; want nil so system roots apply")
	}
}
