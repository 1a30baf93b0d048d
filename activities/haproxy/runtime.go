package haproxy

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
)

// RuntimeAPI speaks HAProxy's runtime API (the "stats socket"): one command
// per connection, the answer is everything HAProxy writes before it closes.
type RuntimeAPI struct {
	Network string // "unix" or "tcp"
	Address string
	Timeout time.Duration
}

// Do runs one command and returns HAProxy's answer.
func (r RuntimeAPI) Do(ctx context.Context, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\n;") {
		// ';' chains commands on the socket; one command per call keeps
		// errors attributable.
		return "", activities.Permanent(fmt.Errorf("haproxy: command %q: newlines and ';' are not allowed", cmd))
	}
	d := net.Dialer{Timeout: r.Timeout}
	conn, err := d.DialContext(ctx, r.Network, r.Address)
	if err != nil {
		return "", fmt.Errorf("haproxy: runtime API %s %s: %w", r.Network, r.Address, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(r.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy: send %q: %w", cmd, err)
	}
	// Answers are small (one backend's servers); cap them anyway.
	b, err := io.ReadAll(io.LimitReader(conn, 8<<20))
	if err != nil {
		return "", fmt.Errorf("haproxy: read answer to %q: %w", cmd, err)
	}
	return string(b), nil
}

// answerError turns a non-empty answer to a command that answers nothing on
// success into an error. HAProxy's refusals are about names and rights, which
// no retry fixes.
func answerError(cmd, answer string) error {
	a := strings.TrimSpace(answer)
	if a == "" {
		return nil
	}
	return activities.Permanent(fmt.Errorf("haproxy: %q: %s", cmd, a))
}

// ServerState is one server's line of `show servers state`.
type ServerState struct {
	Backend     string
	Name        string
	Addr        string
	OpState     int // 0 stopped, 1 starting, 2 running, 3 stopping
	AdminState  int // bit field: 0x01 forced maintenance, 0x08 forced drain, ...
	Weight      int // current user weight (srv_uweight)
	InitWeight  int // weight from the configuration (srv_iweight)
	CheckStatus int
}

// ServersState reads `show servers state <backend>`.
func (r RuntimeAPI) ServersState(ctx context.Context, backend string) ([]ServerState, error) {
	cmd := "show servers state " + backend
	out, err := r.Do(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return parseServersState(cmd, out)
}

func parseServersState(cmd, out string) ([]ServerState, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// The answer is a format version, a "# column ..." header, then one
	// line per server; anything else is an error message.
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "# ") {
		return nil, answerError(cmd, out+" (unexpected answer)")
	}
	cols := map[string]int{}
	for i, c := range strings.Fields(strings.TrimPrefix(lines[1], "# ")) {
		cols[c] = i
	}
	for _, c := range []string{"be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight", "srv_check_status"} {
		if _, ok := cols[c]; !ok {
			return nil, fmt.Errorf("haproxy: %q: no column %s in %q", cmd, c, lines[1])
		}
	}
	var states []ServerState
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) < len(cols) {
			continue
		}
		num := func(c string) int { n, _ := strconv.Atoi(f[cols[c]]); return n }
		states = append(states, ServerState{
			Backend: f[cols["be_name"]], Name: f[cols["srv_name"]], Addr: f[cols["srv_addr"]],
			OpState: num("srv_op_state"), AdminState: num("srv_admin_state"),
			Weight: num("srv_uweight"), InitWeight: num("srv_iweight"), CheckStatus: num("srv_check_status"),
		})
	}
	return states, nil
}

// ServerStat is the part of one `show stat` row that says whether HAProxy
// sends traffic to the server and what its health check saw.
type ServerStat struct {
	Status      string // UP, DOWN, DRAIN, MAINT, NOLB, "no check", "UP 1/2", ...
	CheckStatus string // L7OK, L4CON, ...
	CheckDesc   string
	Weight      int
	LastChange  int // seconds since the status changed
}

// Stat reads `show stat` for one server of backend.
func (r RuntimeAPI) Stat(ctx context.Context, backend, server string) (ServerStat, error) {
	// Unfiltered: the proxy filter of `show stat` takes the first proxy of
	// that name, which is a frontend when a frontend shares the backend's name.
	cmd := "show stat"
	out, err := r.Do(ctx, cmd)
	if err != nil {
		return ServerStat{}, err
	}
	if !strings.HasPrefix(out, "# ") {
		return ServerStat{}, answerError(cmd, out+" (unexpected answer)")
	}
	rd := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil {
		return ServerStat{}, fmt.Errorf("haproxy: %q: %w", cmd, err)
	}
	if len(rows) == 0 {
		return ServerStat{}, fmt.Errorf("haproxy: %q: empty answer", cmd)
	}
	cols := map[string]int{}
	for i, c := range rows[0] {
		cols[c] = i
	}
	get := func(row []string, c string) string {
		if i, ok := cols[c]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	for _, row := range rows[1:] {
		if get(row, "pxname") != backend || get(row, "svname") != server {
			continue
		}
		w, _ := strconv.Atoi(get(row, "weight"))
		lc, _ := strconv.Atoi(get(row, "lastchg"))
		return ServerStat{
			Status: get(row, "status"), CheckStatus: get(row, "check_status"),
			CheckDesc: get(row, "check_desc"), Weight: w, LastChange: lc,
		}, nil
	}
	return ServerStat{}, activities.Permanent(fmt.Errorf("haproxy: no server %s/%s in show stat", backend, server))
}
