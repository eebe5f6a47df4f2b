// Command pulumi-resource-kubernetes serves the Pulumi Kubernetes provider, built
// from its Go module at the version toolchain.toml pins.
//
// The module's own main package embeds schema-embed.json and
// terraform-mapping-embed.json, which its release build generates (`go generate`)
// and the module does not ship. meshlift's toolchain builds this package instead,
// from a staged copy of this directory into which it writes those two files from the
// module's schema.json and terraform-mapping.json (the same transformation: the
// schema with its version set, the mapping re-serialised).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
