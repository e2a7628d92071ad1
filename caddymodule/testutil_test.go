package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"

	"go.uber.org/zap"
)

func testLogger() *zap.Logger { return zap.NewNop() }

func hmacSum(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}
