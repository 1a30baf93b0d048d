package codec

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// HandlerOptions configures Handler.
type HandlerOptions struct {
	// Origins are the Temporal UI origins allowed to call the codec server
	// from a browser ("http://localhost:8233"); "*" allows any origin (with
	// credentials it is answered with the caller's own origin). Requests
	// without an Origin header (the temporal CLI, curl) are not affected.
	Origins []string
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// /encode and /decode. Leave it empty only behind other authentication.
	Token string
	// MaxBodyBytes bounds a request body; 0 means 8 MiB.
	MaxBodyBytes int64
	// Logger gets one line per refused request; nil discards.
	Logger *slog.Logger
}

const defaultMaxBody = 8 << 20

// Headers the Temporal UI sends with codec requests.
const allowedHeaders = "Content-Type, X-Namespace, Authorization"

// Handler serves c as a Temporal remote codec: POST {prefix}/encode and
// {prefix}/decode with a JSON Payloads body, the endpoint the Temporal UI's
// "codec endpoint" and `temporal --codec-endpoint` call.
func Handler(c converter.PayloadCodec, o HandlerOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = defaultMaxBody
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{codec: converter.NewPayloadCodecHTTPHandler(c), o: o}
	if o.Token != "" {
		// Hashing both sides makes the comparison constant time also in
		// the token's length.
		sum := sha256.Sum256([]byte(o.Token))
		h.tokenSum = sum[:]
	}
	return h
}

type handler struct {
	codec    http.Handler
	o        HandlerOptions
	tokenSum []byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !h.originAllowed(origin) {
			h.refuse(w, r, http.StatusForbidden, "origin not allowed")
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
	// Browsers send preflights without credentials, so they are answered
	// before the token check.
	if r.Method == http.MethodOptions {
		if origin == "" {
			h.refuse(w, r, http.StatusBadRequest, "OPTIONS without Origin")
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", allowedHeaders)
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		h.refuse(w, r, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if h.tokenSum != nil && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="drillship codec"`)
		h.refuse(w, r, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes)
	h.codec.ServeHTTP(w, r)
}

func (h *handler) originAllowed(origin string) bool {
	return slices.Contains(h.o.Origins, "*") || slices.Contains(h.o.Origins, origin)
}

func (h *handler) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum) == 1
}

func (h *handler) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	h.o.Logger.Warn("codec server refused a request", "status", code, "reason", why,
		"method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
	http.Error(w, http.StatusText(code)+": "+why, code)
}
