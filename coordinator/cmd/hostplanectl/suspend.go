package main

import (
	"fmt"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/cobra"
)

// suspendCmds are `hostplanectl server|hosting suspend|unsuspend ID`: an
// operator's suspension (kind "servers" or "hosting"), which a payment does
// not lift.
func suspendCmds(g *globals, kind, noun string) []*cobra.Command {
	var reason string
	print := func(id string) func(api.AdminSuspension) {
		return func(s api.AdminSuspension) {
			state := "not suspended"
			if s.Suspended {
				state = fmt.Sprintf("suspended by %s: %s", s.By, s.Reason)
			}
			printf("%s %s %s", noun, id, state)
			if s.ActionID != "" {
				printf("; action %s", s.ActionID)
			}
			fmt.Println()
		}
	}
	suspend := &cobra.Command{
		Use: "suspend ID --reason TEXT", Short: "Suspend a " + noun + " (stopped, power-on refused; a payment does not lift it)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if reason == "" {
				return usageError{"--reason is required (the customer is shown it)"}
			}
			s, err := g.admin().Suspend(c.Context(), kind, args[0], reason)
			if err != nil {
				return err
			}
			return g.print(s, func() { print(args[0])(s) })
		},
	}
	suspend.Flags().StringVar(&reason, "reason", "", "why, as the customer is shown it")
	unsuspend := &cobra.Command{
		Use: "unsuspend ID", Short: "Lift an operator's suspension of a " + noun, Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := g.admin().Unsuspend(c.Context(), kind, args[0])
			if err != nil {
				return err
			}
			return g.print(s, func() { print(args[0])(s) })
		},
	}
	return []*cobra.Command{suspend, unsuspend}
}
