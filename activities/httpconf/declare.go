package httpconf

import "github.com/drillship/drillship/activities"

// Field declares the `http` setting for a provider's config; doc says what
// the client talks to.
func Field(doc string) activities.Field {
	return activities.Field{Name: Key, Type: activities.TypeObject, Fields: Fields(),
		Doc: doc + ": Prometheus' HTTP client settings (as in prometheus.yml): authorization, basic_auth, oauth2, tls_config, proxy_url, follow_redirects"}
}

func str(name, doc string) activities.Field {
	return activities.Field{Name: name, Type: activities.TypeString, Doc: doc}
}

func secret(name, doc string) activities.Field {
	return activities.Field{Name: name, Type: activities.TypeString, Secret: true, Doc: doc + "; a ${NAME} reference"}
}

func tlsFields() []activities.Field {
	versions := []string{"TLS10", "TLS11", "TLS12", "TLS13"}
	return []activities.Field{
		str("ca", "PEM CA certificates that verify the server, inline"),
		str("ca_file", "file of PEM CA certificates that verify the server"),
		str("cert", "PEM client certificate, inline"),
		str("cert_file", "file of the PEM client certificate"),
		secret("key", "PEM client key, inline"),
		str("key_file", "file of the PEM client key"),
		str("server_name", "name the server certificate is verified against"),
		{Name: "insecure_skip_verify", Type: activities.TypeBool, Default: "false", Doc: "do not verify the server certificate"},
		{Name: "min_version", Type: activities.TypeString, Enum: versions, Doc: "lowest TLS version"},
		{Name: "max_version", Type: activities.TypeString, Enum: versions, Doc: "highest TLS version"},
	}
}

// Fields are the settings under `http:`. The library's *_ref settings (a
// secret manager drillship does not configure), http_headers (the
// provider's own headers setting does that) and proxy_connect_header are
// left out, and refused.
func Fields() []activities.Field {
	return []activities.Field{
		{Name: "authorization", Type: activities.TypeObject, Doc: "an Authorization header", Fields: []activities.Field{
			{Name: "type", Type: activities.TypeString, Default: "Bearer", Doc: "the scheme word"},
			secret("credentials", "the credentials"),
			str("credentials_file", "file holding the credentials, read on each request"),
		}},
		secret("bearer_token", "bearer token (same as authorization.credentials)"),
		str("bearer_token_file", "file holding a bearer token, read on each request (same as authorization.credentials_file)"),
		{Name: "basic_auth", Type: activities.TypeObject, Doc: "HTTP basic authentication", Fields: []activities.Field{
			str("username", "user name"),
			str("username_file", "file holding the user name"),
			secret("password", "password"),
			str("password_file", "file holding the password, read on each request"),
		}},
		{Name: "oauth2", Type: activities.TypeObject, Doc: "OAuth 2.0 client credentials grant", Fields: []activities.Field{
			str("client_id", "client ID"),
			secret("client_secret", "client secret"),
			str("client_secret_file", "file holding the client secret"),
			{Name: "scopes", Type: activities.TypeList, Doc: "scopes asked for"},
			{Name: "token_url", Type: activities.TypeString, Format: "url", Doc: "the token endpoint"},
			{Name: "endpoint_params", Type: activities.TypeMap, Doc: "extra parameters sent to the token endpoint"},
			{Name: "tls_config", Type: activities.TypeObject, Fields: tlsFields(), Doc: "TLS towards the token endpoint"},
			{Name: "proxy_url", Type: activities.TypeString, Format: "url", Doc: "proxy towards the token endpoint"},
			str("no_proxy", "hosts reached without proxy_url (comma-separated)"),
			{Name: "proxy_from_environment", Type: activities.TypeBool, Doc: "use HTTP_PROXY, HTTPS_PROXY and NO_PROXY"},
		}},
		{Name: "tls_config", Type: activities.TypeObject, Fields: tlsFields(), Doc: "TLS: CA, client certificate, server name"},
		{Name: "proxy_url", Type: activities.TypeString, Format: "url", Doc: "HTTP proxy (default: HTTP_PROXY/HTTPS_PROXY from the worker's environment)"},
		str("no_proxy", "hosts reached without proxy_url (comma-separated)"),
		{Name: "proxy_from_environment", Type: activities.TypeBool, Doc: "use HTTP_PROXY, HTTPS_PROXY and NO_PROXY (the default when no proxy setting is given)"},
		{Name: "follow_redirects", Type: activities.TypeBool, Doc: "follow 3xx answers"},
		{Name: "enable_http2", Type: activities.TypeBool, Default: "true", Doc: "allow HTTP/2"},
	}
}
