package caddymodule

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// identityKeyPath is where the gateway's Ed25519 key lives in Caddy's
// storage: every instance of a cluster that shares storage signs with the
// same key, and it outlives restarts.
const identityKeyPath = "dashboard_apps/identity/ed25519.pem"

// identityKey is the gateway's signing key and its published form.
type identityKey struct {
	signer jose.Signer
	jwks   []byte // the JWK Set at /_dashboard_apps/jwks.json
}

// loadIdentityKey reads the key from Caddy's storage, or generates and
// stores it the first time, under the storage's lock so that instances
// starting together agree on one key.
func loadIdentityKey(ctx context.Context, st certmagic.Storage) (*identityKey, error) {
	pemBytes, err := st.Load(ctx, identityKeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if err := st.Lock(ctx, identityKeyPath); err != nil {
			return nil, fmt.Errorf("locking %s: %v", identityKeyPath, err)
		}
		defer st.Unlock(ctx, identityKeyPath)
		if pemBytes, err = st.Load(ctx, identityKeyPath); errors.Is(err, fs.ErrNotExist) {
			pemBytes, err = newIdentityKeyPEM()
			if err == nil {
				err = st.Store(ctx, identityKeyPath, pemBytes)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %v", identityKeyPath, err)
	}
	return parseIdentityKey(pemBytes)
}

func newIdentityKeyPEM() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseIdentityKey(pemBytes []byte) (*identityKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("identity key %s: not PEM", identityKeyPath)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %v", identityKeyPath, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity key %s: not an Ed25519 key", identityKeyPath)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: string(jose.EdDSA), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), pub.KeyID))
	if err != nil {
		return nil, err
	}
	return &identityKey{signer: signer, jwks: jwks}, nil
}

// secretSigner signs with an app's identity_secret (HS256).
func secretSigner(secret string) (jose.Signer, error) {
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)}, (&jose.SignerOptions{}).WithType("JWT"))
}

// assertionLifetime is how long an assertion or a context token is valid.
const assertionLifetime = 5 * time.Minute

// agentClaims are the claims of an agent assertion and, with conversation
// and contact, of an appContext token.
type agentClaims struct {
	Subject      string  `json:"sub"`
	Email        *string `json:"email"`
	Name         *string `json:"name"`
	Role         string  `json:"role,omitempty"`
	Account      int64   `json:"account"`
	Audience     string  `json:"aud"` // one app id, never a list: a token is bound to one app
	IssuedAt     int64   `json:"iat"`
	Expiry       int64   `json:"exp"`
	Conversation *int64  `json:"conversation,omitempty"`
	Contact      *int64  `json:"contact,omitempty"`
}

func newAgentClaims(agent *profile, account int64, role string, audience string, now time.Time) agentClaims {
	sub := ""
	if agent.ID != nil {
		sub = strconv.FormatInt(*agent.ID, 10)
	}
	return agentClaims{
		Subject: sub, Email: agent.Email, Name: agent.Name, Role: role, Account: account,
		Audience: audience, IssuedAt: now.Unix(), Expiry: now.Add(assertionLifetime).Unix(),
	}
}

func sign(s jose.Signer, claims agentClaims) (string, error) {
	return jwt.Signed(s).Claims(claims).Serialize()
}

// headerSafe makes a profile value fit for a request header: control
// characters (a line break would end the header) become spaces.
func headerSafe(v *string) string {
	if v == nil {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, *v)
}
