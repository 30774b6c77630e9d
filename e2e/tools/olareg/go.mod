// Builds olareg for Flotilla's tests (never shipped). A module of its own because
// `go install olareg@version` asks the proxy for olareg's version list, which it refuses.
module flotilla.dev/e2e-tools/olareg

go 1.26.0

require github.com/olareg/olareg v0.1.2

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/spf13/cobra v1.8.1 // indirect
	github.com/spf13/pflag v1.0.6 // indirect
)
