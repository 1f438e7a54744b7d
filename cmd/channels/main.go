// Command channels is the Channels server: the web app, the /fsapi gateway
// for FreeSWITCH and the embedded Verto hub, plus administration commands.
// Run "channels help" for the commands.
package main

import (
	"os"

	"channels/internal/cli"
)

func main() { os.Exit(cli.Main()) }
