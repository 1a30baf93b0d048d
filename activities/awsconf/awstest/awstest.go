// Package awstest runs fake AWS endpoints on loopback that speak a
// service's real wire protocol, record every request and answer with
// scripted responses. Provider tests use it, and so can an end-to-end test
// that runs deploy and drill workflows against these endpoints.
package awstest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/encoding/cbor"
)

// Protocol is an AWS wire protocol.
type Protocol int

// The protocols the drillship providers meet.
const (
	RestXML  Protocol = iota // Route 53
	Query                    // ELBv2, RDS (form-encoded request, XML answer)
	JSON10                   // awsJson1_0 (Route 53 ARC cluster)
	JSON11                   // awsJson1_1 (ECS)
	RestJSON                 // Lambda, FIS
	CBOR                     // smithy-rpcv2-cbor (CloudWatch in the SDK in go.mod)
)

// Request is one recorded request.
type Request struct {
	Op     string // operation name (rpc protocols) or the matched pattern (REST)
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	Form   url.Values     // Query protocol parameters
	Doc    map[string]any // JSON or CBOR body, decoded
	Vars   map[string]string
}

// Response is a scripted answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Handler answers one request.
type Handler func(r *Request) Response

// Server is a fake endpoint for one protocol.
type Server struct {
	Proto Protocol
	URL   string

	mu       sync.Mutex
	requests []*Request
	rpc      map[string]Handler
	rest     map[string]Handler
	mux      *http.ServeMux
	t        testing.TB
}

// New starts a server on 127.0.0.1; it stops when the test ends.
func New(t testing.TB, p Protocol) *Server {
	s := &Server{Proto: p, rpc: map[string]Handler{}, rest: map[string]Handler{}, mux: http.NewServeMux(), t: t}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// LoadOptions point nothing at the server by themselves; they give the SDK
// static credentials and keep it from reading the machine's AWS files.
func LoadOptions() []func(*config.LoadOptions) error {
	return []func(*config.LoadOptions) error{
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	}
}

// Handle registers (or replaces) h for an operation name ("ModifyRule",
// "UpdateAlias") or, for REST protocols, a ServeMux pattern such as
// "POST /2013-04-01/hostedzone/{zone}/rrset".
func (s *Server) Handle(op string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.Contains(op, " ") {
		// Registering a pattern again replaces its handler.
		if _, ok := s.rest[op]; !ok {
			s.mux.HandleFunc(op, func(http.ResponseWriter, *http.Request) {})
		}
		s.rest[op] = h
		return
	}
	s.rpc[op] = h
}

// Sequence answers the first call with rs[0], the second with rs[1], and
// every later one with the last.
func Sequence(rs ...Handler) Handler {
	var mu sync.Mutex
	n := 0
	return func(r *Request) Response {
		mu.Lock()
		i := min(n, len(rs)-1)
		n++
		mu.Unlock()
		return rs[i](r)
	}
}

// Requests returns the recorded requests for op ("" for all), in order.
func (s *Server) Requests(op string) []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Request
	for _, r := range s.requests {
		if op == "" || r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// Ops lists the operations called, in order.
func (s *Server) Ops() []string {
	var out []string
	for _, r := range s.Requests("") {
		out = append(out, r.Op)
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, hr *http.Request) {
	body, _ := io.ReadAll(hr.Body)
	r := &Request{Method: hr.Method, Path: hr.URL.Path, Query: hr.URL.Query(), Header: hr.Header.Clone(), Body: body, Vars: map[string]string{}}
	var h Handler
	switch s.Proto {
	case Query:
		r.Form, _ = url.ParseQuery(string(body))
		r.Op = r.Form.Get("Action")
	case JSON10, JSON11:
		target := hr.Header.Get("X-Amz-Target")
		r.Op = target[strings.LastIndex(target, ".")+1:]
		r.Doc = decodeJSON(body)
	case CBOR:
		if i := strings.LastIndex(hr.URL.Path, "/operation/"); i >= 0 {
			r.Op = hr.URL.Path[i+len("/operation/"):]
		}
		if len(body) > 0 {
			v, err := cbor.Decode(body)
			if err != nil {
				s.t.Errorf("awstest: %s: bad CBOR body: %v", r.Op, err)
			} else if m, ok := fromCBOR(v).(map[string]any); ok {
				r.Doc = m
			}
		}
	case RestJSON, RestXML:
		if s.Proto == RestJSON {
			r.Doc = decodeJSON(body)
		}
		_, pattern := s.mux.Handler(hr)
		r.Op = pattern
		if pattern != "" {
			// Let the mux fill path values by serving the request to it.
			s.mux.ServeHTTP(discard{}, hr)
			for _, name := range patternVars(pattern) {
				r.Vars[name] = hr.PathValue(name)
			}
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, r)
	if s.Proto == RestJSON || s.Proto == RestXML {
		h = s.rest[r.Op]
	} else {
		h = s.rpc[r.Op]
	}
	s.mu.Unlock()
	if h == nil {
		s.t.Errorf("awstest: unexpected request %s %s (op %q)", hr.Method, hr.URL, r.Op)
		resp := s.Error(400, "UnknownOperation", "no handler for "+r.Op)
		write(w, resp)
		return
	}
	write(w, h(r))
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

func patternVars(p string) []string {
	var out []string
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(p[i:], '}')
		out = append(out, strings.TrimSuffix(p[i+1:i+j], "..."))
		p = p[i+j:]
	}
}

func write(w http.ResponseWriter, r Response) {
	for k, vs := range r.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("X-Amzn-Requestid", "req-1")
	if r.Status == 0 {
		r.Status = 200
	}
	w.WriteHeader(r.Status)
	w.Write(r.Body)
}

func decodeJSON(b []byte) map[string]any {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	return m
}

// XML answers with an XML body (Route 53, Query protocols).
func XML(body string) Response {
	return Response{Status: 200, Header: http.Header{"Content-Type": {"text/xml"}}, Body: []byte(body)}
}

// JSON answers v as the server's JSON flavour, or as CBOR on a CBOR server.
func (s *Server) JSON(v any) Response {
	switch s.Proto {
	case CBOR:
		return Response{Status: 200, Header: http.Header{"Content-Type": {"application/cbor"}, "Smithy-Protocol": {"rpc-v2-cbor"}}, Body: cbor.Encode(toCBOR(v))}
	case JSON10:
		return jsonResponse(200, "application/x-amz-json-1.0", v)
	case JSON11:
		return jsonResponse(200, "application/x-amz-json-1.1", v)
	}
	return jsonResponse(200, "application/json", v)
}

func jsonResponse(status int, ct string, v any) Response {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return Response{Status: status, Header: http.Header{"Content-Type": {ct}}, Body: b}
}

// Error answers with an AWS error in the server's protocol.
func (s *Server) Error(status int, code, message string) Response {
	switch s.Proto {
	case RestXML, Query:
		var b bytes.Buffer
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		b.WriteString("<ErrorResponse><Error><Type>" + typ + "</Type><Code>")
		xml.EscapeText(&b, []byte(code))
		b.WriteString("</Code><Message>")
		xml.EscapeText(&b, []byte(message))
		b.WriteString("</Message></Error><RequestId>req-1</RequestId></ErrorResponse>")
		return Response{Status: status, Header: http.Header{"Content-Type": {"text/xml"}}, Body: b.Bytes()}
	case CBOR:
		r := s.JSON(map[string]any{"__type": code, "message": message})
		r.Status = status
		return r
	}
	r := s.JSON(map[string]any{"__type": code, "message": message})
	r.Status = status
	r.Header.Set("X-Amzn-Errortype", code)
	return r
}

// Fixed returns a handler that always answers r.
func Fixed(r Response) Handler { return func(*Request) Response { return r } }

// toCBOR turns JSON-like Go values into CBOR; time.Time becomes an epoch
// timestamp (tag 1), as smithy-rpcv2-cbor sends it.
func toCBOR(v any) cbor.Value {
	switch x := v.(type) {
	case nil:
		return &cbor.Nil{}
	case bool:
		return cbor.Bool(x)
	case string:
		return cbor.String(x)
	case int:
		if x < 0 {
			return cbor.NegInt(uint64(-x))
		}
		return cbor.Uint(uint64(x))
	case int64:
		return toCBOR(int(x))
	case float64:
		return cbor.Float64(x)
	case time.Time:
		return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(x.UnixMilli()) / 1000)}
	case []any:
		l := make(cbor.List, len(x))
		for i, e := range x {
			l[i] = toCBOR(e)
		}
		return l
	case []string:
		l := make(cbor.List, len(x))
		for i, e := range x {
			l[i] = cbor.String(e)
		}
		return l
	case []float64:
		l := make(cbor.List, len(x))
		for i, e := range x {
			l[i] = cbor.Float64(e)
		}
		return l
	case []time.Time:
		l := make(cbor.List, len(x))
		for i, e := range x {
			l[i] = toCBOR(e)
		}
		return l
	case []map[string]any:
		l := make(cbor.List, len(x))
		for i, e := range x {
			l[i] = toCBOR(e)
		}
		return l
	case map[string]any:
		m := cbor.Map{}
		for k, e := range x {
			m[k] = toCBOR(e)
		}
		return m
	}
	panic(fmt.Sprintf("awstest: cannot encode %T as CBOR", v))
}

// fromCBOR turns a decoded CBOR value into JSON-like Go values (numbers as
// float64, epoch timestamps as time.Time).
func fromCBOR(v cbor.Value) any {
	switch x := v.(type) {
	case cbor.Uint:
		return float64(x)
	case cbor.NegInt:
		return -float64(x)
	case cbor.Float32:
		return float64(x)
	case cbor.Float64:
		return float64(x)
	case cbor.String:
		return string(x)
	case cbor.Bool:
		return bool(x)
	case cbor.Slice:
		return []byte(x)
	case cbor.List:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromCBOR(e)
		}
		return out
	case cbor.Map:
		out := map[string]any{}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out[k] = fromCBOR(x[k])
		}
		return out
	case *cbor.Tag:
		if x.ID == 1 {
			f, _ := fromCBOR(x.Value).(float64)
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(frac*1e9)).UTC()
		}
		return fromCBOR(x.Value)
	}
	return nil
}
