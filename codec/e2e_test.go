package codec_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/drillship/drillship/codec"
	"github.com/drillship/drillship/stack"
)

const e2eSecret = "s3cret-rds-master-password-91c2"

type Creds struct {
	Service  string
	Password string
}

func lookup(ctx context.Context, c Creds) (string, error) {
	return "ok:" + c.Password, nil
}

func useCreds(ctx workflow.Context, c Creds) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var got string
	if err := workflow.ExecuteActivity(ctx, lookup, c).Get(ctx, &got); err != nil {
		return "", err
	}
	if c.Service == "fail" {
		// Error messages quote inputs too; they must not leak either.
		return "", temporal.NewNonRetryableApplicationError("bad password "+c.Password, "Bad", nil)
	}
	return c.Service + "/" + got, nil
}

// payloads collects every Payload message anywhere in m (fields, lists and
// maps), so no event type or new field is missed.
func payloads(m protoreflect.Message, out *[]*commonpb.Payload) {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		*out = append(*out, p)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				payloads(v.List().Get(i).Message(), out)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				payloads(mv.Message(), out)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			payloads(v.Message(), out)
		}
		return true
	})
}

func TestEndToEndHistoryHoldsOnlyCiphertext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := stack.Start(ctx, stack.Options{})
	if err != nil {
		t.Fatalf("start Temporal: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stop Temporal: %v", err)
		}
	})

	key := bytes.Repeat([]byte{7}, codec.KeySize)
	pc, err := codec.New(key, codec.KeyID(key))
	if err != nil {
		t.Fatal(err)
	}
	dc := codec.DataConverter(pc)
	logger := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	enc, err := client.Dial(client.Options{
		HostPort: st.Address(), Namespace: st.Namespace(), Logger: logger,
		DataConverter: dc, FailureConverter: codec.FailureConverter(dc),
	})
	if err != nil {
		t.Fatalf("dial with codec: %v", err)
	}
	defer enc.Close()
	plain, err := client.Dial(client.Options{HostPort: st.Address(), Namespace: st.Namespace(), Logger: logger})
	if err != nil {
		t.Fatalf("dial without codec: %v", err)
	}
	defer plain.Close()

	const queue = "codec-e2e"
	w := worker.New(enc, queue, worker.Options{})
	w.RegisterWorkflow(useCreds)
	w.RegisterActivity(lookup)
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	defer w.Stop()

	run := func(id, service string) (client.WorkflowRun, error) {
		memo, err := codec.Memo(dc, map[string]any{"note": "memo " + e2eSecret})
		if err != nil {
			t.Fatal(err)
		}
		opts := client.StartWorkflowOptions{ID: id, TaskQueue: queue, Memo: memo}
		r, err := enc.ExecuteWorkflow(ctx, opts, useCreds, Creds{Service: service, Password: e2eSecret})
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		var got string
		err = r.Get(ctx, &got)
		if err == nil && got != service+"/ok:"+e2eSecret {
			t.Errorf("%s result = %q, want %q", id, got, service+"/ok:"+e2eSecret)
		}
		return r, err
	}

	okRun, err := run("codec-ok", "web")
	if err != nil {
		t.Fatalf("codec-ok: %v", err)
	}
	_, err = run("codec-fail", "fail")
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !strings.Contains(appErr.Error(), "bad password "+e2eSecret) {
		t.Fatalf("codec-fail: err = %v; want the application error, decrypted for the codec client", err)
	}

	// The codec client reads the memo back.
	desc, err := enc.DescribeWorkflowExecution(ctx, okRun.GetID(), okRun.GetRunID())
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var note string
	if err := dc.FromPayload(desc.GetWorkflowExecutionInfo().GetMemo().GetFields()["note"], &note); err != nil || note != "memo "+e2eSecret {
		t.Errorf("memo note = %q, %v; want %q", note, err, "memo "+e2eSecret)
	}

	// The client without the codec sees only ciphertext: it cannot read
	// the result, and no byte of any event holds the secret.
	var raw string
	err = plain.GetWorkflow(ctx, okRun.GetID(), okRun.GetRunID()).Get(ctx, &raw)
	if err == nil {
		t.Fatalf("client without codec read the result %q", raw)
	}
	for _, id := range []string{"codec-ok", "codec-fail"} {
		var all []*commonpb.Payload
		events := 0
		it := plain.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("%s history: %v", id, err)
			}
			events++
			b, err := proto.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(e2eSecret)) {
				t.Errorf("%s event %d (%s) holds the secret in clear text", id, ev.GetEventId(), ev.GetEventType())
			}
			payloads(ev.ProtoReflect(), &all)
		}
		// Input, memo, activity input and result, and the workflow result or
		// failure detail: anything less means the walk missed payloads.
		if len(all) < 5 {
			t.Errorf("%s: %d events, only %d payloads found", id, events, len(all))
		}
		for i, p := range all {
			if bytes.Contains(p.GetData(), []byte(e2eSecret)) {
				t.Errorf("%s payload %d holds the secret", id, i)
			}
			if got := string(p.GetMetadata()[converter.MetadataEncoding]); got != codec.Encoding {
				t.Errorf("%s payload %d has encoding %q, want %q", id, i, got, codec.Encoding)
			}
			if got := string(p.GetMetadata()[codec.MetadataKeyID]); got != codec.KeyID(key) {
				t.Errorf("%s payload %d has key id %q, want %q", id, i, got, codec.KeyID(key))
			}
		}
	}
}
