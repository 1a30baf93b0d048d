package cli

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/codec"
	"github.com/drillship/drillship/worker"
)

func codecServerCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "codec-server",
		Usage: "serve the payload codec so the Temporal UI can show decrypted payloads to people allowed to see them",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "listen", Value: "127.0.0.1:8081", Usage: "address to serve on"},
			&ucli.StringSliceFlag{Name: "ui-origin", Value: ucli.NewStringSlice("http://localhost:8233", "http://127.0.0.1:8233"), Usage: "Temporal UI origins allowed (CORS)"},
			&ucli.StringFlag{Name: "token-file", EnvVars: []string{"DRILLSHIP_CODEC_TOKEN_FILE"}, Usage: "require Authorization: Bearer <token from this file>"},
			&ucli.StringFlag{Name: "codec-key-file", EnvVars: []string{"DRILLSHIP_CODEC_KEY_FILE"}, Usage: "the AES-256 key (or set " + worker.CodecKeyEnv + ")"},
		},
		Action: func(c *ucli.Context) error {
			key, id, err := codec.LoadKey(c.String("codec-key-file"), worker.CodecKeyEnv)
			if errors.Is(err, codec.ErrNoKey) {
				return usageErr("codec-server: no key: set --codec-key-file or %s", worker.CodecKeyEnv)
			}
			if err != nil {
				return usageErr("codec-server: %v", err)
			}
			pc, err := codec.New(key, id)
			if err != nil {
				return usageErr("codec-server: %v", err)
			}
			var token string
			if p := c.String("token-file"); p != "" {
				b, err := os.ReadFile(p)
				if err != nil {
					return usageErr("--token-file: %v", err)
				}
				token = strings.TrimSpace(string(b))
			}
			ln, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return usageErr("--listen: %v", err)
			}
			srv := &http.Server{Handler: codec.Handler(pc, codec.HandlerOptions{Origins: c.StringSlice("ui-origin"), Token: token, Logger: logger(c)}), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(c.App.Writer, "codec server for key %s on http://%s (set it as the UI's codec endpoint)\n", id, ln.Addr())
			go func() { <-c.Context.Done(); _ = srv.Close() }()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
}
