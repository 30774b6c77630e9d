//go:build tools

// Package tools pins olareg, the OCI 1.1 registry (referrers API) of Flotilla's supply-chain tests.
package tools

import _ "github.com/olareg/olareg/cmd/olareg"
