package store

import (
	"errors"
	"os"
	"testing"
)

func TestOpenInvalidURL(t *testing.T) {
	for _, u := range []string{
		"", "relative/path", "file:relative", "file://host/abs", "file:///abs?x=1",
		"ftp://bucket/x", "s3://", "s3:///prefix", "s3://Bad_Bucket/x", "s3://b/../x",
		"s3://bucket/p?endpoint=x", "://", "s3://bucket/a//b",
	} {
		if _, err := Open(t.Context(), u, Options{}); !errors.Is(err, ErrInvalidURL) {
			t.Errorf("Open(%q): %v, want ErrInvalidURL", u, err)
		}
	}
}

func TestOpenLocalLocation(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/x", 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), "file://"+dir+"/x/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Location(), "file://"+dir+"/x"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "a", nil); err == nil {
		t.Error("Put after Close succeeded")
	}
}

func TestOptionsDefaults(t *testing.T) {
	env := map[string]string{
		"AWS_ACCESS_KEY_ID":     "AK",
		"AWS_SECRET_ACCESS_KEY": "SK",
		"AWS_DEFAULT_REGION":    "eu-west-1",
		"AWS_ENDPOINT_URL":      "https://generic.example",
		"AWS_ENDPOINT_URL_S3":   "http://127.0.0.1:9000",
	}
	o, err := Options{getenv: func(k string) string { return env[k] }}.withDefaults(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.AccessKey != "AK" || o.SecretKey != "SK" || o.Region != "eu-west-1" ||
		o.Endpoint != "127.0.0.1:9000" || !o.Insecure {
		t.Errorf("defaults from env: %+v", o)
	}
	env["AWS_REGION"] = "ap-south-1"
	delete(env, "AWS_ENDPOINT_URL_S3")
	o, _ = Options{getenv: func(k string) string { return env[k] }}.withDefaults(nil)
	if o.Region != "ap-south-1" || o.Endpoint != "generic.example" || o.Insecure {
		t.Errorf("AWS_REGION and AWS_ENDPOINT_URL: %+v", o)
	}
	// Explicit options win over the environment.
	o, _ = Options{Endpoint: "h:1", Region: "r", AccessKey: "a", SecretKey: "s",
		getenv: func(k string) string { return env[k] }}.withDefaults(nil)
	if o.Endpoint != "h:1" || o.Region != "r" || o.AccessKey != "a" || o.SecretKey != "s" {
		t.Errorf("explicit options: %+v", o)
	}
	// Nothing set: AWS S3 in us-east-1 over HTTPS.
	o, _ = Options{getenv: func(string) string { return "" }}.withDefaults(nil)
	if o.Endpoint != "s3.amazonaws.com" || o.Region != "us-east-1" || o.Insecure {
		t.Errorf("bare defaults: %+v", o)
	}
	if _, err := (Options{Endpoint: "ftp://x", getenv: func(string) string { return "" }}).withDefaults(nil); !errors.Is(err, ErrInvalidURL) {
		t.Errorf("ftp endpoint: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"s3://AK:SECRET@bucket/p": "s3://bucket/p",
		"s3://bucket/p":           "s3://bucket/p",
		"s3://AK:SE%zz@bucket/p":  "s3://REDACTED@bucket/p",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "a/b", "packs/00/abc.pack", "...", ".x", "a-b_c.D9"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "..", "a/../b", ".", "a b", "a~"} {
		if err := ValidName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidName(%q): %v", bad, err)
		}
	}
}
