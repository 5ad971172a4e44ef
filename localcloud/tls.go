package localcloud

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is how long the generated certificates are valid. They are made at every
// start and never stored beyond Close; a day covers the longest run (make sim, a soak) and
// the hour before now absorbs a client clock slightly behind.
const certValidity = 24 * time.Hour

// authority is the certificate authority a TLS cloud makes at start: its CA certificate, the
// endpoints' certificate it signed, and the CA written out for other processes.
type authority struct {
	caPEM  []byte
	server tls.Certificate
	// dir holds ca.pem; Close removes it.
	dir, caFile string
}

// newAuthority makes a CA (ECDSA P-256) and a server certificate signed by it for loopback
// (127.0.0.1, ::1, localhost) and for the MNS endpoint names of the regions, which the MNS
// SDK talks to while its transport dials the local address (internal/mnsdial): a client
// then checks the same name against the certificate as it would in production. Nothing is
// valid for any other name. The certificates use the real clock, not the cloud's: clients
// verify them against theirs.
func newAuthority(regions []string) (*authority, error) {
	now := time.Now()
	caSerial, err := serial()
	if err != nil {
		return nil, err
	}
	leafSerial, err := serial()
	if err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{Organization: []string{"enipool localcloud"}, CommonName: "localcloud test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	names := []string{"localhost"}
	for _, r := range regions {
		names = append(names, fmt.Sprintf("*.mns.%s.aliyuncs.com", r), fmt.Sprintf("*.mns.%s-internal.aliyuncs.com", r))
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: leafSerial,
		Subject:      pkix.Name{Organization: []string{"enipool localcloud"}, CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	a := &authority{
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		server: tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key},
	}
	if a.dir, err = os.MkdirTemp("", "localcloud-ca-"); err != nil {
		return nil, err
	}
	a.caFile = filepath.Join(a.dir, "ca.pem")
	if err := os.WriteFile(a.caFile, a.caPEM, 0o644); err != nil {
		os.RemoveAll(a.dir)
		return nil, err
	}
	return a, nil
}

// serverConfig is the endpoints' TLS configuration.
func (a *authority) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{a.server}, MinVersion: tls.VersionTLS12}
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// ClientTLS returns a TLS client configuration that trusts the cloud's CA and nothing else,
// for clients in the test process (an SDK client's transport); nil when the cloud serves
// plain HTTP. Processes of their own trust the cloud through CAFile instead.
func (c *Cloud) ClientTLS() *tls.Config {
	if c.ca == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca.caPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
