package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// `sightline inventory publish --source cloudmap` on the output of an
// account with two namespaces publishes one sync per namespace; --namespace
// (Id or name) publishes only that one; an unknown namespace is an error
// naming the ones there are; --help says which AWS CLI command makes each
// file. As a user runs it (the binary, --dry-run: nothing published).
func TestInventoryCloudMapNamespaces(t *testing.T) {
	dir := filepath.Join("..", "..", "producers", "inventory", "testdata", "cloudmap-two")
	base := []string{"inventory", "publish", "--source", "cloudmap", "--dir", dir, "--dry-run", "--tag", "5",
		"--state", filepath.Join(t.TempDir(), "tags.json")}
	out, err := sightlineOut(t, base...)
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for _, want := range []string{
		"would publish sync cloudmap:ns-pay000000000001@5: 8 items in 1 parts",
		"would publish sync cloudmap:ns-shop00000000001@5: 11 items in 1 parts",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = sightlineOut(t, append(base, "--namespace", "payments.local")...)
	if err != nil || !strings.Contains(out, "cloudmap:ns-pay000000000001@5: 8 items") || strings.Contains(out, "ns-shop") {
		t.Fatalf("--namespace payments.local (err %v):\n%s", err, out)
	}
	out, err = sightlineOut(t, append(base, "--namespace", "prod")...)
	if err == nil || !strings.Contains(out, `no service of namespace "prod"`) ||
		!strings.Contains(out, "ns-pay000000000001 (payments.local), ns-shop00000000001 (shop.local)") {
		t.Fatalf("--namespace prod (err %v):\n%s", err, out)
	}
	out, err = sightlineOut(t, append(base, "--scope", "cloudmap:x")...)
	if err == nil || !strings.Contains(out, "--scope") || !strings.Contains(out, "--namespace") {
		t.Fatalf("--scope with two namespaces (err %v):\n%s", err, out)
	}
	out, _ = sightlineOut(t, "inventory", "publish", "--help")
	for _, want := range []string{
		"DIR/namespaces.json", "aws servicediscovery list-namespaces",
		"aws servicediscovery discover-instances --namespace-name NS --service-name NAME",
		"one sync per namespace",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("--help lacks %q:\n%s", want, out)
		}
	}
}
