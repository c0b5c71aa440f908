// Command haldir is the high-availability director for Linux Virtual Server:
// VRRP, health checks and IPVS in one binary.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("haldir", version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: haldir version")
	os.Exit(2)
}
