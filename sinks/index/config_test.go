package index_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/index"
)

// The index section's credentials block authenticates to a real
// OpenSearch with the security plugin over https: index.username with
// index.password_file (as variables, as a secret mount is) and the CA in
// index.ca_file lists the pipeline's indices; a wrong password is refused.
func TestCredentialsBlockAuthenticatesToOpenSearchSecurity(t *testing.T) {
	url, ca, passwords := testsvc.OpenSearchSecurity(t)
	var pass string
	f, err := os.Open(passwords)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "OPENSEARCH_SIGHTLINE_PASSWORD="); ok {
			pass = v
		}
	}
	f.Close()
	if pass == "" {
		t.Fatalf("%s holds no OPENSEARCH_SIGHTLINE_PASSWORD", passwords)
	}
	list := func(password string) error {
		pw := filepath.Join(t.TempDir(), "opensearch-password")
		if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load("", []string{"SIGHTLINE_INDEX_USERNAME=sightline", "SIGHTLINE_INDEX_PASSWORD_FILE=" + pw},
			[]string{"index.urls=" + url, "index.ca_file=" + ca, "index.timeout=10s"}, index.Spec.Section)
		if err != nil {
			t.Fatal(err)
		}
		ic, err := sinks.SectionOf[index.Config](c, "index")
		if err != nil {
			t.Fatal(err)
		}
		r, err := index.NewRemote(*ic)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = r.Indices(ctx)
		return err
	}
	if err := list(pass); err != nil {
		t.Fatalf("index.username and index.password_file over https: %v", err)
	}
	err = list("not-" + pass)
	if err == nil {
		t.Fatal("a wrong password from index.password_file was accepted")
	}
	if strings.Contains(err.Error(), pass) {
		t.Errorf("the error shows the password: %v", err)
	}
}
