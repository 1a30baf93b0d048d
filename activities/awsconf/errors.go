package awsconf

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/drillship/drillship/activities"
)

// Error is an AWS call that failed: the IAM action, the resource it was
// about and the SDK's error.
type Error struct {
	Action   string // "route53:ChangeResourceRecordSets"
	Resource string // "hostedzone/Z123"
	Err      error
}

func (e *Error) Error() string {
	var api smithy.APIError
	if errors.As(e.Err, &api) {
		return e.Action + " on " + e.Resource + ": " + api.ErrorCode() + ": " + api.ErrorMessage()
	}
	return e.Action + " on " + e.Resource + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Codes that no retry fixes. Names ending in NotFound, NotFoundFault or
// NotFoundException count as well (DBClusterNotFoundFault, ...).
var permanentCodes = map[string]bool{
	"AccessDenied":                   true,
	"AccessDeniedException":          true,
	"UnauthorizedOperation":          true,
	"UnauthorizedException":          true,
	"UnrecognizedClientException":    true,
	"InvalidClientTokenId":           true,
	"AuthFailure":                    true,
	"ValidationError":                true,
	"ValidationException":            true,
	"InvalidInput":                   true,
	"InvalidParameter":               true,
	"InvalidParameterValue":          true,
	"InvalidParameterException":      true,
	"InvalidParameterValueException": true,
	"InvalidParameterCombination":    true,
	"InvalidChangeBatch":             true,
	"MissingParameter":               true,
	"ClientException":                true, // ECS: the request itself is wrong
	"NoSuchHostedZone":               true,
	"NoSuchHealthCheck":              true,
	"NoSuchChange":                   true,
	"ResourceNotFound":               true,
	"ResourceNotFoundException":      true,
}

// Throttling codes, beside what the SDK's retry classification knows.
var throttleCodes = map[string]bool{
	"Throttling":                             true,
	"ThrottlingException":                    true,
	"ThrottledException":                     true,
	"TooManyRequestsException":               true,
	"PriorRequestNotComplete":                true,
	"RequestLimitExceeded":                   true,
	"RequestThrottled":                       true,
	"RequestThrottledException":              true,
	"ProvisionedThroughputExceededException": true,
	"SlowDown":                               true,
}

// IsThrottle reports whether err is AWS asking the caller to slow down.
func IsThrottle(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && throttleCodes[api.ErrorCode()] {
		return true
	}
	return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool()
}

// Classify wraps err with the action and resource. Throttling, 5xx and
// anything not known to be final stay plain errors so that Temporal retries
// them with backoff; access, validation and not-found errors are marked
// activities.Permanent.
func Classify(err error, action, resource string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	e := &Error{Action: action, Resource: resource, Err: err}
	if IsThrottle(err) {
		return e
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return e
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		if permanentCodes[code] || strings.HasSuffix(code, "NotFound") ||
			strings.HasSuffix(code, "NotFoundFault") || strings.HasSuffix(code, "NotFoundException") {
			return activities.Permanent(e)
		}
	}
	return e
}
