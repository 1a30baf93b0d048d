package worker

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// writeProfiles writes a temporal.toml as `temporal config set` would and
// points TEMPORAL_CONFIG_FILE at it.
func writeProfiles(t *testing.T, toml string) string {
	t.Helper()
	unsetClientEnv(t)
	path := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", path)
	return path
}

const profiles = `
[profile.default]
address = "dev.internal:7233"

[profile.prod]
address = "prod.tmprl.cloud:7233"
namespace = "prod.acct"
api_key = "prod-key"

[profile.prod.tls]
server_name = "prod.tmprl.cloud"
server_ca_cert_path = "/etc/temporal/ca.pem"

[profile.prod.grpc_meta]
x-tenant = "shop"

[profile.plain]
address = "plain.internal:7233"
api_key = "k"

[profile.plain.tls]
disabled = true
`

func TestProfilePrecedence(t *testing.T) {
	path := writeProfiles(t, profiles)

	// The default profile, and the defaults for what it leaves out.
	got := parseFlags(t)
	if got.Address != "dev.internal:7233" || got.Namespace != DefaultNamespace || got.Profile != "default" || got.ConfigFile != path || got.tlsWanted() {
		t.Fatalf("default profile: %+v", got)
	}

	// --profile picks another; everything in it arrives.
	got = parseFlags(t, "--profile", "prod")
	if got.Address != "prod.tmprl.cloud:7233" || got.Namespace != "prod.acct" || got.APIKey != "prod-key" ||
		got.TLSServerName != "prod.tmprl.cloud" || got.TLSCAPath != "/etc/temporal/ca.pem" || got.GRPCMeta["x-tenant"] != "shop" || !got.tlsWanted() {
		t.Fatalf("profile prod: %+v", got)
	}

	// Environment over the profile, flags over the environment.
	t.Setenv("TEMPORAL_PROFILE", "prod")
	t.Setenv("TEMPORAL_NAMESPACE", "env-ns")
	t.Setenv("TEMPORAL_ADDRESS", "env.example:7233")
	got = parseFlags(t, "--address", "flag.example:7233")
	if got.Profile != "prod" || got.Namespace != "env-ns" || got.Address != "flag.example:7233" || got.APIKey != "prod-key" {
		t.Fatalf("flag > env > profile: %+v", got)
	}

	// tls.disabled holds even with an API key; --tls turns it back on.
	os.Unsetenv("TEMPORAL_NAMESPACE")
	os.Unsetenv("TEMPORAL_ADDRESS")
	got = parseFlags(t, "--profile", "plain")
	if got.tlsWanted() {
		t.Fatalf("profile with tls.disabled: TLS wanted, %+v", got)
	}
	if opts, err := got.Options(quiet); err != nil || opts.ConnectionOptions.TLS != nil || opts.Credentials == nil {
		t.Fatalf("profile with tls.disabled: options TLS %v creds %v err %v; want plain with the key", opts.ConnectionOptions.TLS, opts.Credentials, err)
	}
	if got = parseFlags(t, "--profile", "plain", "--tls"); !got.tlsWanted() {
		t.Fatalf("--tls over tls.disabled: %+v", got)
	}
	// --tls=false turns off what an API key implies.
	if got = parseFlags(t, "--profile", "prod", "--tls=false"); got.tlsWanted() {
		t.Fatalf("--tls=false over an API key: %+v", got)
	}
	// A flag's file replaces the profile's file.
	if got = parseFlags(t, "--profile", "prod", "--tls-ca-path", "/flag/ca.pem"); got.TLSCAPath != "/flag/ca.pem" {
		t.Fatalf("--tls-ca-path over the profile: %+v", got)
	}
}

func TestProfileErrors(t *testing.T) {
	path := writeProfiles(t, profiles)
	for _, tc := range []struct {
		args []string
		toml string
		want []string
	}{
		{[]string{"--profile", "staging"}, "", []string{path, `no profile "staging"`, "default, plain, prod"}},
		{nil, "[profile.default\naddress = 1", []string{path}},
		{[]string{"--profile", "x", "--config-file", filepath.Join(t.TempDir(), "gone.toml")}, "", []string{`no profile "x"`}},
	} {
		if tc.toml != "" {
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		got := parseFlags(t, tc.args...)
		if got.Err() == nil {
			t.Errorf("%v: Err() nil: the CLI would try to connect", tc.args)
		}
		_, err := got.Options(quiet)
		if err == nil {
			t.Errorf("%v: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %q", tc.args, err, w)
			}
		}
		// Dial refuses before connecting.
		if _, derr := Dial(context.Background(), got, quiet); derr == nil || !strings.Contains(derr.Error(), err.Error()) {
			t.Errorf("%v: Dial error %v, want %v", tc.args, derr, err)
		}
	}
	// No file at the default place is no error: the defaults apply.
	unsetClientEnv(t)
	if _, err := parseFlags(t).Options(quiet); err != nil {
		t.Fatalf("no config file: %v", err)
	}
}

// A profile alone, as `temporal config set` writes it, connects: the API
// key arrives as a bearer token over TLS verified with the profile's CA and
// server name, with the profile's gRPC metadata.
func TestDialFromProfile(t *testing.T) {
	p := newPKI(t)
	var mu sync.Mutex
	var auth, tenant []string
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.serverCert}})),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			md, _ := metadata.FromIncomingContext(stream.Context())
			mu.Lock()
			auth = append(auth, md.Get("authorization")...)
			tenant = append(tenant, md.Get("x-tenant")...)
			mu.Unlock()
			return status.Error(codes.Unimplemented, "test server")
		}),
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Stop()

	writeProfiles(t, `
[profile.cloud]
address = "`+l.Addr().String()+`"
namespace = "cloud-ns.acct"
api_key = "profile-key"
[profile.cloud.tls]
server_ca_cert_path = "`+p.caPath+`"
server_name = "temporal.test"
[profile.cloud.grpc_meta]
x-tenant = "shop"
`)
	t.Setenv("TEMPORAL_PROFILE", "cloud")
	cfg := parseFlags(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg, quiet)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(auth) == 0 || auth[0] != "Bearer profile-key" {
		t.Errorf("authorization sent = %q, want [\"Bearer profile-key\"]", auth)
	}
	if len(tenant) == 0 || tenant[0] != "shop" {
		t.Errorf("x-tenant sent = %q, want [\"shop\"]", tenant)
	}
}
