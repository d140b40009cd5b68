package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names in the directory of a self-signed set.
const (
	CAFileName      = "ca.crt"
	caKeyFileName   = "ca.key"
	CertFileName    = "server.crt"
	KeyFileName     = "server.key"
	caValidity      = 5 * 365 * 24 * time.Hour
	serverValidity  = 365 * 24 * time.Hour
	renewBefore     = 30 * 24 * time.Hour // a certificate this close to its end is remade
	backdate        = time.Hour           // NotBefore is this early, for clocks slightly behind
	serialNumberLen = 128                 // bits
)

// LocalHosts are the names every self-signed server certificate covers.
func LocalHosts() []string { return []string{"127.0.0.1", "localhost", "::1"} }

// SelfSigned is a CA and a server certificate it signed, as files in Dir.
type SelfSigned struct {
	Dir string
	// CAFile is the CA's certificate: what clients trust (curl --cacert, requests
	// verify=, shoal --cacert). Its key stays in Dir, mode 0600.
	CAFile string
	// CertFile and KeyFile are the server's certificate and key.
	CertFile, KeyFile string
	// Hosts are the names and addresses the server certificate covers.
	Hosts []string
	// NotAfter is the end of the server certificate's validity.
	NotAfter time.Time
	// MadeCA and MadeCert say whether this call made the CA or the server certificate
	// (false: the files were valid and reused).
	MadeCA, MadeCert bool
}

// EnsureSelfSigned returns the self-signed set in dir, making what is missing or no
// longer fit: the CA when it is absent, unreadable or ends within 30 days; the server
// certificate when the CA was made, or it is absent, does not cover every one of hosts
// (LocalHosts are always added), or ends within 30 days. Reusing the CA on later starts
// keeps the file clients already trust valid. now is the time of validity checks and of
// the new certificates. The directory is made with mode 0700, the keys with 0600.
func EnsureSelfSigned(dir string, hosts []string, now time.Time) (*SelfSigned, error) {
	all := LocalHosts()
	for _, h := range hosts {
		if h != "" && !slices.Contains(all, h) {
			all = append(all, h)
		}
	}
	s := &SelfSigned{
		Dir:      dir,
		CAFile:   filepath.Join(dir, CAFileName),
		CertFile: filepath.Join(dir, CertFileName),
		KeyFile:  filepath.Join(dir, KeyFileName),
		Hosts:    all,
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	caKeyFile := filepath.Join(dir, caKeyFileName)

	ca, caKey, err := loadCA(s.CAFile, caKeyFile, now)
	if err != nil {
		ca, caKey, err = makeCA(now)
		if err != nil {
			return nil, err
		}
		if err := writePEM(caKeyFile, "PRIVATE KEY", mustPKCS8(caKey), 0o600); err != nil {
			return nil, err
		}
		if err := writePEM(s.CAFile, "CERTIFICATE", ca.Raw, 0o644); err != nil {
			return nil, err
		}
		s.MadeCA = true
	}

	if !s.MadeCA {
		if leaf, err := loadServer(s.CertFile, s.KeyFile, ca, all, now); err == nil {
			s.NotAfter = leaf.NotAfter
			return s, nil
		}
	}
	leaf, key, err := makeServer(ca, caKey, all, now)
	if err != nil {
		return nil, err
	}
	if err := writePEM(s.KeyFile, "PRIVATE KEY", mustPKCS8(key), 0o600); err != nil {
		return nil, err
	}
	if err := writePEM(s.CertFile, "CERTIFICATE", leaf.Raw, 0o644); err != nil {
		return nil, err
	}
	s.NotAfter = leaf.NotAfter
	s.MadeCert = true
	return s, nil
}

// errUnfit says why an existing file is not reused; it never leaves this package.
var errUnfit = errors.New("unfit")

func loadCA(certFile, keyFile string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	ca := pair.Leaf
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if ca == nil || !ok || !ca.IsCA || !validAt(ca, now) {
		return nil, nil, errUnfit
	}
	return ca, signer, nil
}

func loadServer(certFile, keyFile string, ca *x509.Certificate, hosts []string, now time.Time) (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	leaf := pair.Leaf
	if leaf == nil || !validAt(leaf, now) {
		return nil, errUnfit
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			return nil, err
		}
	}
	return leaf, nil
}

// validAt reports whether c is valid at now and stays so for renewBefore.
func validAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && now.Add(renewBefore).Before(c.NotAfter)
}

func makeCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"shoal"}, CommonName: "shoal local CA " + now.UTC().Format("2006-01-02T15:04:05Z")},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs only server certificates, directly.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	return ca, key, nil
}

func makeServer(ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("server key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	// A certificate never outlives the CA that signed it.
	notAfter := now.Add(serverValidity)
	if ca.NotAfter.Before(notAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"shoal"}, CommonName: hosts[0]},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	return leaf, key, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), serialNumberLen))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // positive, never 0
}

// mustPKCS8 encodes a key made by this package, which PKCS #8 always supports.
func mustPKCS8(key crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic("tlsutil: " + err.Error())
	}
	return der
}

// writePEM writes one PEM block through a temporary file and a rename, so that a crash
// never leaves half a certificate or key behind.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, this fails harmlessly
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: typ, Bytes: der}); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
