package testsvc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
	"gocloud.dev/blob/s3blob"

	"github.com/sightline/sightline/internal/testsvc"
)

// These tests show each local service (task services:up) accepts a write and returns it,
// through the official client the sinks use.

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNeo4jWriteRead(t *testing.T) {
	info := testsvc.Neo4j(t)
	ctx := ctxFor(t)
	drv, err := neo4j.NewDriverWithContext(info.URI, neo4j.BasicAuth(info.User, info.Password, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close(ctx)
	id := uuid.NewString()
	_, err = neo4j.ExecuteQuery(ctx, drv,
		"MERGE (n:SightlineServiceTest {id: $id}) SET n.note = $note",
		map[string]any{"id": id, "note": "hello"}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatalf("write to %s: %v", info.URI, err)
	}
	t.Cleanup(func() {
		_, _ = neo4j.ExecuteQuery(context.Background(), drv,
			"MATCH (n:SightlineServiceTest {id: $id}) DELETE n", map[string]any{"id": id}, neo4j.EagerResultTransformer)
	})
	res, err := neo4j.ExecuteQuery(ctx, drv,
		"MATCH (n:SightlineServiceTest {id: $id}) RETURN n.note AS note",
		map[string]any{"id": id}, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(res.Records) != 1 {
		t.Fatalf("got %d records, want 1", len(res.Records))
	}
	if note, _ := res.Records[0].Get("note"); note != "hello" {
		t.Fatalf("note = %v, want hello", note)
	}
}

func indexWriteRead(t *testing.T, baseURL string) {
	ctx := ctxFor(t)
	cl, err := opensearchapi.NewClient(opensearchapi.Config{Client: opensearch.Config{Addresses: []string{baseURL}}})
	if err != nil {
		t.Fatal(err)
	}
	index := "sightline-servicetest-" + strings.ToLower(uuid.NewString()[:8])
	t.Cleanup(func() {
		_, _ = cl.Indices.Delete(context.Background(), opensearchapi.IndicesDeleteReq{Indices: []string{index}})
	})
	doc := `{"correlationid":"c-1","msg":"hello"}`
	if _, err := cl.Index(ctx, opensearchapi.IndexReq{
		Index: index, DocumentID: "doc-1", Body: strings.NewReader(doc),
		Params: opensearchapi.IndexParams{Refresh: "true"},
	}); err != nil {
		t.Fatalf("index into %s: %v", baseURL, err)
	}
	got, err := cl.Document.Get(ctx, opensearchapi.DocumentGetReq{Index: index, DocumentID: "doc-1"})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	var src map[string]any
	if err := json.Unmarshal(got.Source, &src); err != nil {
		t.Fatal(err)
	}
	if !got.Found || src["msg"] != "hello" {
		t.Fatalf("got found=%v source=%s", got.Found, got.Source)
	}
	search, err := cl.Search(ctx, &opensearchapi.SearchReq{
		Indices: []string{index},
		Body:    strings.NewReader(`{"query":{"term":{"correlationid.keyword":"c-1"}}}`),
	})
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if search.Hits.Total.Value != 1 {
		t.Fatalf("search by correlation id: %d hits, want 1", search.Hits.Total.Value)
	}
}

func TestOpenSearchWriteRead(t *testing.T) {
	indexWriteRead(t, testsvc.OpenSearch(t))
}

func TestElasticsearchWriteRead(t *testing.T) {
	if _, ok := testsvc.Lookup(testsvc.EnvElasticsearchURL); !ok {
		t.Skip("optional Elasticsearch not started (task services:up ES=1)")
	}
	indexWriteRead(t, testsvc.Elasticsearch(t))
}

func TestS3WriteRead(t *testing.T) {
	info := testsvc.S3(t)
	ctx := ctxFor(t)
	client := s3.New(s3.Options{
		Region:       info.Region,
		BaseEndpoint: aws.String(info.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(info.AccessKey, info.SecretKey, ""),
	})
	bucket, err := s3blob.OpenBucket(ctx, client, info.Bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	key := fmt.Sprintf("servicetest/%s.json", uuid.NewString())
	want := []byte(`{"hello":"s3"}`)
	if err := bucket.WriteAll(ctx, key, want, nil); err != nil {
		t.Fatalf("write s3://%s/%s at %s: %v", info.Bucket, key, info.Endpoint, err)
	}
	t.Cleanup(func() { _ = bucket.Delete(context.Background(), key) })
	r, err := bucket.NewReader(ctx, key, nil)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	got, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %q (%v), want %q", got, err, want)
	}
}

func TestNATSClusterReplicatedStream(t *testing.T) {
	if _, ok := testsvc.Lookup(testsvc.EnvNATSClusterURLs); !ok {
		t.Skip("optional NATS cluster not started (task services:up NATS=1)")
	}
	urls := testsvc.NATSCluster(t)
	ctx := ctxFor(t)
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "SERVICETEST_" + strings.ToUpper(uuid.NewString()[:8])
	subject := "servicetest." + strings.ToLower(name)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{subject}, Replicas: 3, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatalf("create R3 stream on %v: %v", urls, err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	if _, err := js.Publish(ctx, subject, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("GetMsg: %v", err)
	}
	if string(msg.Data) != "hello" {
		t.Fatalf("GetMsg data %q, want hello", msg.Data)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream not replicated to 3 nodes: %+v", info.Cluster)
	}
}
