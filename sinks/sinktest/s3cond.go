package sinktest

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// UnconditionalS3 starts an HTTP proxy in front of the S3 server at
// endpoint that removes the conditional-write headers (If-Match,
// If-None-Match) from every request and signs it again with the given
// keys: to its clients, a store without conditional PUT (or whose
// conditional PUT is not atomic). It returns the proxy's endpoint and is
// closed when the test ends, logging how many conditions it dropped.
func UnconditionalS3(t testing.TB, endpoint, accessKey, secretKey, region string) string {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("sinktest: S3 endpoint: %v", err)
	}
	creds := aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }) // as S3 signs
	var dropped atomic.Int64
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = target.Host
		if r.Out.Header.Get("If-Match") != "" || r.Out.Header.Get("If-None-Match") != "" {
			dropped.Add(1)
		}
		r.Out.Header.Del("If-Match")
		r.Out.Header.Del("If-None-Match")
		r.Out.Header.Del("Authorization")
		hash := r.Out.Header.Get("X-Amz-Content-Sha256")
		if err := signer.SignHTTP(r.Out.Context(), creds, r.Out, hash, "s3", region, time.Now()); err != nil {
			t.Errorf("sinktest: sign: %v", err)
		}
	}}
	srv := httptest.NewServer(proxy)
	t.Cleanup(func() {
		srv.Close()
		t.Logf("sinktest: unconditional S3 proxy dropped the conditions of %d requests", dropped.Load())
	})
	return srv.URL
}
