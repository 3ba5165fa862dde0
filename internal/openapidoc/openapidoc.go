// Package openapidoc loads an OpenAPI document once per process and content.
package openapidoc

import (
	"crypto/sha256"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/hostplane/hostplane/internal/memo"
)

var docs memo.Cache[[sha256.Size]byte, *openapi3.T] // by the document's sha256

// Load is kin-openapi's loader (LoadFromData) for doc, run once per process
// and document content. The document returned is shared: callers only read
// it (a copy of the top-level struct may change its own fields).
//
// One load of the coordinator's /openapi.json takes ≈ 80–140 ms of CPU
// (kin-openapi reads JSON through its YAML parser), and a coordinator read
// it twice as it started: httpapi's query parameters and the MCP server's
// tools, each loading it for itself. The suite starts hundreds of
// coordinator processes, and those loads were about a third of a test
// coordinator's CPU. Kept, the loaded document holds ≈ 1.4 MiB of heap.
func Load(doc []byte) (*openapi3.T, error) {
	return docs.Get(sha256.Sum256(doc), func() (*openapi3.T, error) {
		return openapi3.NewLoader().LoadFromData(doc)
	})
}
