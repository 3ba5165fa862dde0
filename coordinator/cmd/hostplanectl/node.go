package main

import "github.com/spf13/cobra"

// newNodeCmd returns `hostplanectl node …`, which talks to the local agent's socket.
// Placeholder until the agent lands.
func newNodeCmd() *cobra.Command {
	return &cobra.Command{Use: "node", Short: "Operate the local hypervisor agent"}
}
