// Package version holds the build's version string, set by the linker.
package version

// Version is the software version, set with -ldflags at build time.
var Version = "dev"
