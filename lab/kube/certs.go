package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is what the cluster's TLS and tokens need, as files in a directory.
type pki struct {
	caCert, caKey         string // the CA that signs the serving cert; in every kubeconfig
	serveCert, serveKey   string // 127.0.0.1 and localhost, shared by the three servers
	saKey, saPub          string // service-account token signing
	tokenFile             string // static tokens for the admin and the components
	caPEM                 []byte
	tokens                map[string]string // user -> token
	adminToken, adminUser string
}

// Users of the static token file. Each component has its own name so the
// audit log tells their writes apart; all are in system:masters (the lab
// is not where the components' own RBAC is tested).
const (
	AdminUser      = "drillship-admin"
	userController = "lab:kube-controller-manager"
	userScheduler  = "lab:kube-scheduler"
	userKwok       = "lab:kwok"
)

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		caCert: filepath.Join(dir, "ca.crt"), caKey: filepath.Join(dir, "ca.key"),
		serveCert: filepath.Join(dir, "serving.crt"), serveKey: filepath.Join(dir, "serving.key"),
		saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"),
		tokenFile: filepath.Join(dir, "tokens.csv"),
		tokens:    map[string]string{},
		adminUser: AdminUser,
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "drillship-lab-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	p.caPEM = pemBlock("CERTIFICATE", caDER)
	files := map[string][]byte{p.caCert: p.caPEM, p.serveCert: pemBlock("CERTIFICATE", srvDER)}
	for path, key := range map[string]*ecdsa.PrivateKey{p.caKey: caKey, p.serveKey: srvKey, p.saKey: saKey} {
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, err
		}
		files[path] = pemBlock("EC PRIVATE KEY", der)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	files[p.saPub] = pemBlock("PUBLIC KEY", pubDER)
	var csv []byte
	for _, u := range []string{AdminUser, userController, userScheduler, userKwok} {
		tok := randomHex(24)
		p.tokens[u] = tok
		// token,user,uid,"group1,group2"
		csv = append(csv, fmt.Sprintf("%s,%s,%s,\"system:masters\"\n", tok, u, u)...)
	}
	p.adminToken = p.tokens[AdminUser]
	files[p.tokenFile] = csv
	for path, body := range files {
		if err := os.WriteFile(path, body, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
