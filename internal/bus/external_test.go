package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/httpauth/authtest"
	"github.com/sightline/sightline/internal/testsvc"
)

// external starts a separate JetStream server with the given options.
func external(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	o.Host, o.Port, o.JetStream, o.StoreDir, o.NoSigs = "127.0.0.1", -1, true, t.TempDir(), true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("external server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// roundTrip runs the processor over the connection and checks one event.
func roundTrip(t *testing.T, o bus.Options, streams ...bus.StreamsConfig) {
	t.Helper()
	sc := bus.DefaultStreams()
	if len(streams) > 0 {
		sc = streams[0]
	}
	o.Logger = bustest.Logger(t)
	b, err := bus.Connect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.EnsureStreams(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()
	bustest.Pub(t, b, "sightline.raw.metric.external", `{"ok":true}`)
	bustest.Messages(t, b, bus.StreamEvents, "sightline.events.metric.external", 1)
}

func TestExternalServerAuthentication(t *testing.T) {
	t.Run("user and password", func(t *testing.T) {
		s := external(t, &server.Options{Username: "app", Password: "s3cret"})
		roundTrip(t, bus.Options{URLs: []string{s.ClientURL()}, User: "app", Password: "s3cret"})
		_, err := bus.Connect(context.Background(), bus.Options{URLs: []string{s.ClientURL()}, User: "app", Password: "wrong"})
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("wrong password: %v (and the error must not echo secrets)", err)
		}
	})
	t.Run("token", func(t *testing.T) {
		s := external(t, &server.Options{Authorization: "tok-123"})
		roundTrip(t, bus.Options{URLs: []string{s.ClientURL()}, Token: "tok-123"})
	})
	t.Run("nkey", func(t *testing.T) {
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		f := filepath.Join(t.TempDir(), "user.nk")
		if err := os.WriteFile(f, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		s := external(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
		roundTrip(t, bus.Options{URLs: []string{s.ClientURL()}, NKeyFile: f})
	})
	t.Run("TLS with a custom CA", func(t *testing.T) {
		ca, certFile, keyFile := selfSigned(t)
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		s := external(t, &server.Options{TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
		url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
		tc, err := config.TLS{CAFile: ca}.ClientConfig("nats") // as nats.ca_file is loaded
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, bus.Options{URLs: []string{url}, TLS: tc})
		if _, err := bus.Connect(context.Background(), bus.Options{URLs: []string{url}}); err == nil {
			t.Fatal("connected without trusting the CA")
		}
	})
}

// TestExternalCluster runs the processor against the 3-node NATS cluster of
// `task services:up NATS=1`, with the URL list.
func TestExternalCluster(t *testing.T) {
	urls := testsvc.NATSCluster(t)
	roundTrip(t, bus.Options{URLs: urls}, clusterStreams())
}

// clusterStreams are the streams replicated over the three nodes of the
// local cluster, sized for its servers' storage.
func clusterStreams() bus.StreamsConfig {
	sc := bus.DefaultStreams()
	sc.Replicas = 3
	for _, l := range []*bus.StreamLimits{&sc.Raw, &sc.Events, &sc.DLQ} {
		l.MaxBytes = 64 << 20
	}
	return sc
}

// selfSigned writes a CA-less self-signed server certificate for
// 127.0.0.1 and returns (ca file, cert file, key file); the cert is its own CA.
func selfSigned(t *testing.T) (string, string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sightline-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	kder, _ := x509.MarshalECPrivateKey(key)
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, certFile, keyFile
}

// The nats section's credentials and TLS reach a real NATS server over a
// real TLS connection: username with password_file and the CA file, then a
// token from token_file; a wrong password is refused.
func TestNATSCredentialsBlockAgainstATLSServer(t *testing.T) {
	ca, cert, key := authtest.WritePKI(t, t.TempDir(), "nats credentials")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	start := func(o *server.Options) string {
		o.TLS, o.TLSConfig = true, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		return strings.Replace(external(t, o).ClientURL(), "nats://", "tls://", 1)
	}
	secretFile := func(secret string) string {
		p := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	connect := func(sets ...string) error {
		c, err := config.Load("", nil, sets)
		if err != nil {
			return err
		}
		o, err := c.BusOptions()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		b, err := bus.Connect(ctx, o)
		if err != nil {
			return err
		}
		defer b.Close()
		if _, err := b.Conn().TLSConnectionState(); err != nil {
			t.Errorf("not a TLS connection: %v", err)
		}
		_, err = b.Conn().RTT()
		return err
	}

	users := start(&server.Options{Username: "worker", Password: "wpw"})
	if err := connect("nats.urls="+users, "nats.ca_file="+ca, "nats.username=worker", "nats.password_file="+secretFile("wpw")); err != nil {
		t.Errorf("username and password_file over TLS: %v", err)
	}
	if err := connect("nats.urls="+users, "nats.ca_file="+ca, "nats.username=worker", "nats.password_file="+secretFile("nope")); err == nil {
		t.Error("a wrong password from password_file connected")
	}
	if err := connect("nats.urls="+users, "nats.username=worker", "nats.password=wpw"); err == nil {
		t.Error("connected without trusting the CA")
	}
	tokens := start(&server.Options{Authorization: "t0ken"})
	if err := connect("nats.urls="+tokens, "nats.ca_file="+ca, "nats.token_file="+secretFile("t0ken")); err != nil {
		t.Errorf("token_file over TLS: %v", err)
	}
}
