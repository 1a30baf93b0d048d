package awsconf_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

func TestSettingsValidation(t *testing.T) {
	for _, tc := range []struct {
		s    awsconf.Settings
		want string
	}{
		{awsconf.Settings{}, "region is required"},
		{awsconf.Settings{Region: "useast1"}, `region "useast1"`},
		{awsconf.Settings{Region: "us-east-1", RoleARN: "arn:aws:iam::1:role/x"}, "roleArn"},
		{awsconf.Settings{Region: "us-east-1", ExternalID: "x"}, "externalId is only used with roleArn"},
		{awsconf.Settings{Region: "us-east-1", Endpoint: "localhost:1"}, "endpoint"},
		{awsconf.Settings{Region: "us-east-1", MaxAttempts: 9}, "maxAttempts 9"},
		{awsconf.Settings{Region: "us-east-1", MaxWait: "soon"}, "maxWait"},
		{awsconf.Settings{Region: "us-east-1", AccountID: "12"}, "accountId"},
	} {
		_, err := awsconf.New(tc.s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.s, err, tc.want)
		}
	}
	c, err := awsconf.New(awsconf.Settings{Region: "cn-north-1", RoleARN: "arn:aws-cn:iam::123456789012:role/drill", MaxWait: "90s", PollInterval: "2s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxWait != 90*time.Second || c.Partition() != "aws-cn" || c.Account() != "123456789012" ||
		c.ARN("ecs", "service/a/b") != "arn:aws-cn:ecs:cn-north-1:123456789012:service/a/b" || c.Settings.MaxAttempts != 2 {
		t.Errorf("conn = %+v", c)
	}
	if mn, mx := c.Delays(time.Minute, time.Hour); mn != 2*time.Second || mx != 2*time.Second {
		t.Errorf("delays = %v %v", mn, mx)
	}
}

type apiErr struct{ code string }

func (e apiErr) Error() string                 { return e.code }
func (e apiErr) ErrorCode() string             { return e.code }
func (e apiErr) ErrorMessage() string          { return "msg" }
func (e apiErr) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

func TestClassify(t *testing.T) {
	for code, permanent := range map[string]bool{
		"AccessDenied": true, "AccessDeniedException": true, "UnauthorizedOperation": true,
		"ValidationError": true, "InvalidParameterValue": true, "DBClusterNotFoundFault": true,
		"ResourceNotFoundException": true, "NoSuchHostedZone": true, "ServiceNotFoundException": true,
		"Throttling": false, "ThrottlingException": false, "TooManyRequestsException": false,
		"PriorRequestNotComplete": false, "RequestLimitExceeded": false, "InvalidDBClusterStateFault": false,
	} {
		err := awsconf.Classify(fmt.Errorf("op: %w", apiErr{code}), "rds:FailoverDBCluster", "cluster:orders")
		if activities.IsPermanent(err) != permanent {
			t.Errorf("%s: permanent = %v, want %v", code, activities.IsPermanent(err), permanent)
		}
		if want := "rds:FailoverDBCluster on cluster:orders: " + code + ": msg"; err.Error() != want {
			t.Errorf("%s: message %q, want %q", code, err, want)
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			t.Errorf("%s: the API error is not wrapped", code)
		}
	}
	if awsconf.Classify(nil, "a:b", "c") != nil {
		t.Error("nil error classified")
	}
	if err := awsconf.Classify(context.Canceled, "a:b", "c"); err != context.Canceled {
		t.Errorf("canceled = %v", err)
	}
}

// AssumeRole goes to STS through AWS_ENDPOINT_URL_STS, which the SDK honours
// by itself, with the role, external id and session name.
func TestAssumeRoleThroughSTS(t *testing.T) {
	sts := awstest.New(t, awstest.Query)
	sts.Handle("AssumeRole", awstest.Fixed(awstest.XML(`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey>
      <SessionToken>token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/drill/drillship</Arn><AssumedRoleId>AROA:drillship</AssumedRoleId></AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`)))
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	c, err := awsconf.New(awsconf.Settings{Region: "us-east-1", RoleARN: "arn:aws:iam::123456789012:role/drill", ExternalID: "ext-42"}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts.Requests("")) != 0 {
		t.Fatal("New did I/O")
	}
	cfg, err := c.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "ASIAEXAMPLE" || creds.SessionToken != "token" {
		t.Errorf("creds = %+v", creds)
	}
	f := sts.Requests("AssumeRole")[0].Form
	if f.Get("RoleArn") != "arn:aws:iam::123456789012:role/drill" || f.Get("ExternalId") != "ext-42" || f.Get("RoleSessionName") != "drillship" {
		t.Errorf("AssumeRole form = %v", f)
	}
	if cfg.RetryMaxAttempts != 2 || cfg.Region != "us-east-1" {
		t.Errorf("cfg retry %d region %s", cfg.RetryMaxAttempts, cfg.Region)
	}
}
