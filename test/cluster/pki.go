package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fail(err)
	return k
}

// issue signs tmpl for key with parent (self-signed when parent is nil).
func issue(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	fail(err)
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	fail(err)
	cert, err := x509.ParseCertificate(der)
	fail(err)
	return cert
}

func (d stateDir) writeKey(name string, k *ecdsa.PrivateKey) {
	der, err := x509.MarshalECPrivateKey(k)
	fail(err)
	d.writePEM(name, "EC PRIVATE KEY", der)
}

func (d stateDir) readPEM(name string) []byte {
	raw, err := os.ReadFile(d.path(name))
	fail(err)
	block, _ := pem.Decode(raw)
	if block == nil {
		fail(fmt.Errorf("%s is not PEM", d.path(name)))
	}
	return block.Bytes
}

// pki is the cluster's one CA, which signs every serving and client certificate.
type pki struct {
	d   stateDir
	ca  *x509.Certificate
	key *ecdsa.PrivateKey
}

// writeCA creates the CA, the admin client certificate and the ServiceAccount token signing key.
func writeCA(d stateDir) {
	caKey, admKey, saKey := newKey(), newKey(), newKey()
	ca := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "kubecluster-ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, caKey, nil, nil)
	adm := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "kubecluster-admin", Organization: []string{"system:masters"}},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, admKey, ca, caKey)
	d.writePEM("ca.crt", "CERTIFICATE", ca.Raw)
	d.writePEM("admin.crt", "CERTIFICATE", adm.Raw)
	d.writeKey("ca.key", caKey)
	d.writeKey("admin.key", admKey)
	d.writeKey("sa.key", saKey)
}

// loadOrWritePKI reuses the CA, admin certificate and ServiceAccount signing key of an earlier run in
// the same state directory, so a restarted control plane keeps them: existing kubeconfigs and tokens
// stay valid (fault-injection tests restart the API server under a running broker). etcd reuses its
// data directory the same way.
func loadOrWritePKI(d stateDir) *pki {
	for _, name := range []string{"ca.crt", "ca.key", "admin.crt", "admin.key", "sa.key"} {
		if _, err := os.Stat(d.path(name)); err != nil {
			writeCA(d)
			break
		}
	}
	ca, err := x509.ParseCertificate(d.readPEM("ca.crt"))
	fail(err)
	key, err := x509.ParseECPrivateKey(d.readPEM("ca.key"))
	fail(err)
	return &pki{d: d, ca: ca, key: key}
}

// serving writes <name>.crt/.key, a server certificate for these addresses (reissued on every start,
// so the node's address is in it when there is a node).
func (p *pki) serving(name, cn string, dns []string, ips ...net.IP) {
	k := newKey()
	c := issue(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, k, p.ca, p.key)
	p.d.writePEM(name+".crt", "CERTIFICATE", c.Raw)
	p.d.writeKey(name+".key", k)
}

// client writes <name>.crt/.key, a client certificate for user cn in groups orgs.
func (p *pki) client(name, cn string, orgs ...string) {
	k := newKey()
	c := issue(&x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: orgs},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, k, p.ca, p.key)
	p.d.writePEM(name+".crt", "CERTIFICATE", c.Raw)
	p.d.writeKey(name+".key", k)
}
