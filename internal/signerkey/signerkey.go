// Package signerkey parses the PKCS#8 private keys hostplane signs with: the
// node CA's key, a node's session key and an ACME account key.
package signerkey

import (
	"crypto"
	"crypto/x509"
	"fmt"
)

// ParsePKCS8 parses a PKCS#8 private key (DER) that can sign: RSA, ECDSA or
// Ed25519. The error is x509's parse error, or "a T cannot sign" for a key
// of type T that cannot (an X25519 key). Callers say which key it was.
func ParsePKCS8(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", k)
	}
	return s, nil
}
