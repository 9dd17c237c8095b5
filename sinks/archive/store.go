package archive

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/s3blob"
)

// OpenBucket opens the bucket Config.URL names, already restricted to its
// prefix: an S3-compatible bucket (s3://bucket/prefix, with Endpoint,
// Region, keys and PathStyle) or a local directory (created if missing).
// The caller closes it.
func OpenBucket(ctx context.Context, cfg Config) (*blob.Bucket, error) {
	u := cfg.URL
	if u == "" {
		u = DefaultDir
	}
	if strings.HasPrefix(u, "s3://") {
		name, prefix := splitS3URL(u)
		if name == "" {
			return nil, fmt.Errorf("archive: open %s: %w: no bucket", u, ErrConfig)
		}
		client, err := s3Client(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("archive: open %s: %w", u, err)
		}
		b, err := s3blob.OpenBucket(ctx, client, name, &s3blob.Options{
			// S3-compatible servers do not all accept the SDK's default trailing checksums.
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		})
		if err != nil {
			return nil, fmt.Errorf("archive: open %s: %w", u, err)
		}
		if prefix != "" {
			b = blob.PrefixedBucket(b, prefix)
		}
		return b, nil
	}
	dir := strings.TrimPrefix(u, "file://")
	if err := mkdirDurable(dir); err != nil {
		return nil, fmt.Errorf("archive: create %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: open %s: %w", dir, err)
	}
	// Metadata sidecar files would show up as extra objects to other tools.
	b, err := fileblob.OpenBucket(abs, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
	if err != nil {
		return nil, fmt.Errorf("archive: open %s: %w", abs, err)
	}
	return b, nil
}

func s3Client(ctx context.Context, cfg Config) (*s3.Client, error) {
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	var httpc *http.Client
	tc, err := cfg.ClientConfig("archive")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if tc != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		httpc = &http.Client{Transport: tr}
	}
	mod := func(o *s3.Options) {
		if httpc != nil {
			o.HTTPClient = httpc
		}
		o.UsePathStyle = cfg.PathStyle
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
	cred, err := cfg.Credentials.Resolved("archive")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cred.Username != "" {
		return s3.New(s3.Options{
			Region:      region,
			Credentials: credentials.NewStaticCredentialsProvider(cred.Username, cred.Password, ""),
		}, mod), nil
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return s3.NewFromConfig(awsCfg, mod), nil
}
