// Command svcctl waits until a locally started service (deploy/local/services.sh) answers
// a real request, and prepares it for use (for S3: creates the bucket).
//
//	svcctl neo4j      -uri bolt://127.0.0.1:7687 -user neo4j -password ... [-pidfile f] [-timeout 2m]
//	svcctl opensearch -url http://127.0.0.1:9200 [-pidfile f] [-timeout 2m]
//	svcctl s3         -endpoint http://127.0.0.1:9000 -access ... -secret ... -region us-east-1 -bucket b
//
// -ca FILE trusts that PEM CA (TLS instances: bolt+s://, https://).
//
// It exits 0 once healthy, 1 with a one-line reason on timeout, or at once when the
// process named by -pidfile has died.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: svcctl neo4j|opensearch|s3 [flags]")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	pidfile := fs.String("pidfile", "", "fail at once if the process in this pid file is gone")
	uri := fs.String("uri", "bolt://127.0.0.1:7687", "neo4j: Bolt URI")
	user := fs.String("user", "neo4j", "neo4j: user")
	password := fs.String("password", "", "neo4j: password")
	url := fs.String("url", "http://127.0.0.1:9200", "opensearch/elasticsearch: base URL")
	endpoint := fs.String("endpoint", "http://127.0.0.1:9000", "s3: endpoint")
	access := fs.String("access", "", "s3: access key")
	secret := fs.String("secret", "", "s3: secret key")
	region := fs.String("region", "us-east-1", "s3: region")
	bucket := fs.String("bucket", "", "s3: bucket to create if missing")
	caFile := fs.String("ca", "", "PEM CA file to trust (TLS instances)")
	_ = fs.Parse(os.Args[2:])
	var roots *x509.CertPool
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "svcctl: -ca: %v\n", err)
			os.Exit(2)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fmt.Fprintf(os.Stderr, "svcctl: -ca %s: no PEM certificate\n", *caFile)
			os.Exit(2)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		http.DefaultClient = &http.Client{Transport: tr}
	}

	var probe func(ctx context.Context) error
	switch cmd {
	case "neo4j":
		probe = func(ctx context.Context) error { return neo4jProbe(ctx, *uri, *user, *password, roots) }
	case "opensearch", "elasticsearch":
		probe = func(ctx context.Context) error { return clusterHealth(ctx, *url) }
	case "s3":
		probe = func(ctx context.Context) error {
			return s3Probe(ctx, *endpoint, *access, *secret, *region, *bucket)
		}
	default:
		fmt.Fprintf(os.Stderr, "svcctl: unknown service %q\n", cmd)
		os.Exit(2)
	}

	deadline := time.Now().Add(*timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		last = probe(ctx)
		cancel()
		if last == nil {
			return
		}
		if *pidfile != "" {
			if err := alive(*pidfile); err != nil {
				fmt.Fprintf(os.Stderr, "%s: process died before it became healthy (%v); last probe error: %v\n", cmd, err, last)
				os.Exit(1)
			}
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "%s: not healthy after %s: %v\n", cmd, *timeout, last)
			os.Exit(1)
		}
		time.Sleep(time.Second)
	}
}

// alive reports an error when the pid file is unreadable or its process is gone.
func alive(pidfile string) error {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		// The service may not have written its own pid file yet.
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("bad pid file %s: %w", pidfile, err)
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	// A zombie still answers kill(0); read its state.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
			return fmt.Errorf("pid %d exited", pid)
		}
	}
	return nil
}

func neo4jProbe(ctx context.Context, uri, user, password string, roots *x509.CertPool) error {
	drv, err := neo4j.NewDriverWithContext(uri, neo4j.BasicAuth(user, password, ""), func(c *config.Config) {
		if roots != nil {
			c.TlsConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		}
	})
	if err != nil {
		return err
	}
	defer drv.Close(ctx)
	res, err := neo4j.ExecuteQuery(ctx, drv, "RETURN 1 AS ok", nil, neo4j.EagerResultTransformer)
	if err != nil {
		return err
	}
	if len(res.Records) != 1 {
		return fmt.Errorf("RETURN 1 gave %d records", len(res.Records))
	}
	return nil
}

func clusterHealth(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/_cluster/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return fmt.Errorf("_cluster/health: HTTP %d: %w", resp.StatusCode, err)
	}
	if h.Status != "green" && h.Status != "yellow" {
		return fmt.Errorf("_cluster/health status %q", h.Status)
	}
	return nil
}

func s3Probe(ctx context.Context, endpoint, access, secret, region, bucket string) error {
	cl := s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		HTTPClient:   http.DefaultClient,
	})
	if _, err := cl.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		return fmt.Errorf("ListBuckets: %w", err)
	}
	if bucket == "" {
		return nil
	}
	if _, err := cl.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		if _, cerr := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); cerr != nil {
			return fmt.Errorf("HeadBucket %s: %v; CreateBucket: %w", bucket, err, cerr)
		}
	}
	if _, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)}); err != nil {
		return fmt.Errorf("ListObjectsV2 %s: %w", bucket, err)
	}
	return nil
}
