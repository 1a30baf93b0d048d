package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Activities sends notifications; register a *Activities on the worker.
type Activities struct {
	// Client posts the webhooks; nil uses a client with a 10s timeout.
	Client *http.Client
	// Lookup resolves ${NAME} references; nil reads the environment.
	Lookup func(string) (string, bool)
}

// SendInput is one event for one channel.
type SendInput struct {
	Channel Channel `json:"channel"`
	Event   Event   `json:"event"`
}

// SendResult is what the receiver answered.
type SendResult struct {
	Status   int `json:"status"`
	Attempts int `json:"attempts"`
}

// PostTimeout bounds one attempt: a receiver that hangs costs an attempt,
// not the run.
const PostTimeout = 10 * time.Second

// SendNotification posts ev to the channel. A 4xx other than 408/429 is
// permanent (the URL or payload is wrong; retrying will not help); other
// failures are retried by Temporal.
func (a *Activities) SendNotification(ctx context.Context, in SendInput) (SendResult, error) {
	attempt := int(activity.GetInfo(ctx).Attempt)
	lookup := a.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	u, err := Expand(in.Channel.URL, lookup)
	if err != nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError("channel "+in.Channel.Name+": "+err.Error(), "NotifyConfig", nil)
	}
	body, ctype, err := Body(in.Channel.Kind, in.Event)
	if err != nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError("rendering: "+err.Error(), "NotifyConfig", nil)
	}
	pctx, cancel := context.WithTimeout(ctx, PostTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		// The message could name the expanded URL: keep it to the channel.
		return SendResult{}, temporal.NewNonRetryableApplicationError("channel "+in.Channel.Name+": the URL is not valid", "NotifyConfig", nil)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "drillship")
	for k, v := range in.Channel.Headers {
		hv, err := Expand(v, lookup)
		if err != nil {
			return SendResult{}, temporal.NewNonRetryableApplicationError("channel "+in.Channel.Name+" header "+k+": "+err.Error(), "NotifyConfig", nil)
		}
		req.Header.Set(k, hv)
	}
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: PostTimeout}
	}
	resp, err := c.Do(req)
	if err != nil {
		// Never the URL (a secret): only what went wrong.
		return SendResult{Attempts: attempt}, fmt.Errorf("channel %s: post failed: %s", in.Channel.Name, transportError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return SendResult{Status: resp.StatusCode, Attempts: attempt}, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return SendResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("channel %s: the receiver refused it (HTTP %d)", in.Channel.Name, resp.StatusCode), "NotifyRefused", nil)
	}
	return SendResult{}, fmt.Errorf("channel %s: the receiver answered HTTP %d", in.Channel.Name, resp.StatusCode)
}

func transportError(err error) string {
	if os.IsTimeout(err) || err == context.DeadlineExceeded {
		return "timed out after " + PostTimeout.String()
	}
	// url.Error's message names the URL; its cause does not.
	type unwrapper interface{ Unwrap() error }
	if u, ok := err.(unwrapper); ok && u.Unwrap() != nil {
		return u.Unwrap().Error()
	}
	return "connection failed"
}

// SendOptions are the activity options of a send: bounded retries over a
// few minutes, never longer, whatever the receiver does.
func SendOptions(ev Event, ch Channel) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		Summary:                "Notify " + ch.Name + ": " + ev.Type,
		StartToCloseTimeout:    PostTimeout + 5*time.Second,
		ScheduleToCloseTimeout: 3 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: 30 * time.Second, MaximumAttempts: 5},
	}
}
