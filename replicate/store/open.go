package store

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"
)

// Options configure Open. Only S3 stores use the S3 fields; any field left
// empty takes its value from the standard AWS environment variables.
type Options struct {
	// Endpoint is the S3 service: "host:port", or a URL "http://host:port"
	// or "https://host" (the scheme then decides Insecure). Default:
	// $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS S3
	// (s3.amazonaws.com).
	Endpoint string
	// Region of the bucket. Default: $AWS_REGION, else $AWS_DEFAULT_REGION,
	// else "us-east-1".
	Region string
	// PathStyle addresses buckets as endpoint/bucket instead of
	// bucket.endpoint: most self-hosted services (MinIO, Ceph RGW,
	// SeaweedFS, versitygw) need it.
	PathStyle bool
	// AccessKey and SecretKey: default $AWS_ACCESS_KEY_ID and
	// $AWS_SECRET_ACCESS_KEY; access key and secret in the URL's user info
	// (s3://KEY:SECRET@bucket/prefix) come before the environment.
	AccessKey, SecretKey string
	// Insecure talks plain HTTP instead of HTTPS.
	Insecure bool
	// NoCreateBucket: a missing bucket is an error wrapping ErrMissing
	// instead of being created (every region operation but region add: an
	// operation never writes to a store without the region's marker).
	NoCreateBucket bool
	// Logger receives the backends' diagnostics; nil discards them.
	Logger *slog.Logger
	// IdleTimeout fails an S3 call whose connection moves no byte either
	// way for this long (a body stalled mid-transfer). Default:
	// $SNAPFS_S3_IDLE_TIMEOUT (a Go duration, e.g. 2m), else 60 s.
	IdleTimeout time.Duration

	// getenv replaces os.Getenv in tests.
	getenv func(string) string
}

// Open opens the store at rawURL:
//
//	file:///abs/path       a local directory, which must exist (ErrMissing)
//	s3://bucket            the whole bucket
//	s3://bucket/prefix     the objects under prefix/ in bucket
//
// An S3 bucket that does not exist is created (in opts.Region). A URL
// Open cannot use gives an error wrapping ErrInvalidURL. Open returns the
// bare backend: stack retries and fault injection on it with Wrap.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		return OpenLocal(u.Path)
	}
	return openS3(ctx, u, opts)
}

// CheckURL checks a store URL's form (scheme, absolute file path) without
// opening anything: the errors Open gives for a URL it cannot use.
func CheckURL(rawURL string) error {
	_, err := parseURL(rawURL)
	return err
}

func parseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidURL, redact(rawURL), err)
	}
	switch u.Scheme {
	case "file":
		if u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("%w: %q: a file URL needs an absolute path, file:///abs/path", ErrInvalidURL, rawURL)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%w: %q: file URL with host %q, want file:///abs/path", ErrInvalidURL, rawURL, u.Host)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("%w: %q: a file URL takes no user, query or fragment", ErrInvalidURL, rawURL)
		}
		return u, nil
	case "s3":
		return u, nil
	case "":
		return nil, fmt.Errorf("%w: %q has no scheme, want file:///abs/path or s3://bucket/prefix", ErrInvalidURL, redact(rawURL))
	default:
		return nil, fmt.Errorf("%w: %q: unknown scheme %q, want file or s3", ErrInvalidURL, redact(rawURL), u.Scheme)
	}
}

// Redact is rawURL without its user info (S3 credentials given in the
// URL), for errors, logs and reports: every message that names a store by
// its configured URL names it through Redact (or Store.Location).
func Redact(rawURL string) string { return redact(rawURL) }

// redact drops the user info of a URL so credentials stay out of errors
// and logs.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		if i := strings.Index(rawURL, "@"); i >= 0 {
			if j := strings.Index(rawURL, "://"); j >= 0 && j < i {
				return rawURL[:j+3] + "REDACTED@" + rawURL[i+1:]
			}
		}
		return rawURL
	}
	u.User = nil
	return u.String()
}

func (o Options) env(key string) string {
	if o.getenv != nil {
		return o.getenv(key)
	}
	return os.Getenv(key)
}

// withDefaults fills empty fields from the environment and the URL's user
// info, and splits a URL-form Endpoint into host and Insecure.
func (o Options) withDefaults(user *url.Userinfo) (Options, error) {
	if o.AccessKey == "" && o.SecretKey == "" && user != nil {
		o.AccessKey = user.Username()
		o.SecretKey, _ = user.Password()
	}
	if o.AccessKey == "" {
		o.AccessKey = o.env("AWS_ACCESS_KEY_ID")
	}
	if o.SecretKey == "" {
		o.SecretKey = o.env("AWS_SECRET_ACCESS_KEY")
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = s3IdleTimeout
		if v := o.env("SNAPFS_S3_IDLE_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return o, fmt.Errorf("%w: SNAPFS_S3_IDLE_TIMEOUT=%q: want a positive duration such as 2m", ErrInvalidURL, v)
			}
			o.IdleTimeout = d
		}
	}
	if o.Region == "" {
		o.Region = o.env("AWS_REGION")
	}
	if o.Region == "" {
		o.Region = o.env("AWS_DEFAULT_REGION")
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Endpoint == "" {
		o.Endpoint = o.env("AWS_ENDPOINT_URL_S3")
	}
	if o.Endpoint == "" {
		o.Endpoint = o.env("AWS_ENDPOINT_URL")
	}
	if o.Endpoint == "" {
		o.Endpoint = "s3.amazonaws.com"
	}
	if strings.Contains(o.Endpoint, "://") {
		e, err := url.Parse(o.Endpoint)
		if err != nil {
			return o, fmt.Errorf("%w: endpoint %q: %w", ErrInvalidURL, o.Endpoint, err)
		}
		switch e.Scheme {
		case "http":
			o.Insecure = true
		case "https":
			o.Insecure = false
		default:
			return o, fmt.Errorf("%w: endpoint %q: scheme %q, want http or https", ErrInvalidURL, o.Endpoint, e.Scheme)
		}
		if e.Host == "" || (e.Path != "" && e.Path != "/") || e.User != nil {
			return o, fmt.Errorf("%w: endpoint %q: want scheme://host[:port] only", ErrInvalidURL, o.Endpoint)
		}
		o.Endpoint = e.Host
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
