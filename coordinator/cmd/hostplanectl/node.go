package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/pkg/validate"
	"github.com/spf13/cobra"
)

// nodeFlags are the flags every `hostplanectl node …` command shares.
type nodeFlags struct {
	socket string
	json   bool
	opID   string
}

func (f *nodeFlags) client() *client.NodeClient { return client.NodeNew(f.socket) }

// id returns --op-id or a fresh random id, which is printed to stderr so the
// operator can replay the same operation.
func (f *nodeFlags) id() string {
	if f.opID != "" {
		return f.opID
	}
	id := client.NodeNewOpID()
	fmt.Fprintln(os.Stderr, "operation id:", id)
	return id
}

func (f *nodeFlags) emit(c *cobra.Command, v any, text func(w io.Writer)) error {
	if f.json {
		return writeJSON(c.OutOrStdout(), v)
	}
	text(c.OutOrStdout())
	return nil
}

// nodeRun is the RunE of a node command that makes one call and prints its
// result on c's output: as JSON with --json, else with text. Rejected input is
// a usage error (nodeErr; the coordinator admin client never returns one).
func nodeRun[T any](f *nodeFlags, call func(c *cobra.Command, args []string) (T, error), text func(w io.Writer, v T)) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		v, err := call(c, args)
		if err != nil {
			return nodeErr(err)
		}
		return f.emit(c, v, func(w io.Writer) { text(w, v) })
	}
}

// nodeCmd is the command use (short help, positional args) that runs
// nodeRun(f, call, text).
func nodeCmd[T any](f *nodeFlags, use, short string, args cobra.PositionalArgs, call func(c *cobra.Command, args []string) (T, error), text func(w io.Writer, v T)) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: args, RunE: nodeRun(f, call, text)}
}

// nodeErr turns rejected input into a usage error (exit 2); other failures exit 1.
func nodeErr(err error) error {
	var ne *api.NodeError
	if errors.As(err, &ne) && ne.Code == api.NodeErrInvalid {
		return usageError{ne.Message}
	}
	return err
}

// opTo returns a function that prints an operation (also a failed one) on c's
// output and returns its error.
func (f *nodeFlags) opTo(c *cobra.Command) func(*api.NodeOperation, error) error {
	return func(op *api.NodeOperation, err error) error {
		if op == nil {
			return nodeErr(err)
		}
		if perr := f.emit(c, op, func(w io.Writer) { printNodeOp(w, op) }); perr != nil {
			return perr
		}
		return nodeErr(err)
	}
}

// nodeOperationCmd is the command use (short help, positional args) that starts the
// node operation op returns and prints it as opTo does.
func nodeOperationCmd(f *nodeFlags, use, short string, args cobra.PositionalArgs, op func(c *cobra.Command, args []string) (*api.NodeOperation, error)) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: args, RunE: func(c *cobra.Command, a []string) error { return f.opTo(c)(op(c, a)) }}
}

func printNodeOp(w io.Writer, op *api.NodeOperation) {
	extra := ""
	if op.Result != nil && op.Result.PowerMethod != "" {
		extra = " (" + op.Result.PowerMethod + ")"
	}
	replay := ""
	if op.Replayed {
		replay = ", recorded result"
	}
	fprintf(w, "%s %s: %s%s [op %s%s]\n", op.Kind, op.Target, op.State, extra, op.ID, replay)
	if op.Error != nil {
		fprintf(w, "  error (%s): %s\n", op.Error.Code, op.Error.Message)
	}
	r := op.Result
	if r == nil {
		return
	}
	if r.Message != "" {
		fprintf(w, "  %s\n", r.Message)
	}
	if r.VM != nil {
		fprintf(w, "  vm %s: %s, uuid %s, mac %s, disk %s\n", r.VM.Name, r.VM.State, r.VM.UUID, r.VM.MAC, r.VM.DiskVolume)
	}
	if r.Template != nil {
		fprintf(w, "  template %s: %s, %d bytes virtual, sha256 %s\n", r.Template.Name, r.Template.OSFamily, r.Template.SizeBytes, r.Template.SHA256)
	}
	if r.Snapshot != nil {
		fprintf(w, "  snapshot %s: %s, taken %s\n", r.Snapshot.Name, r.Snapshot.State, r.Snapshot.CreatedAt.Format(time.RFC3339))
	}
	if r.SnapshotsRemoved != nil {
		fprintf(w, "  snapshots removed: %d %s\n", len(r.SnapshotsRemoved), strings.Join(r.SnapshotsRemoved, " "))
	}
}

// nodeReadSecret reads a password from a file ("-" for stdin), trimming one trailing newline.
func nodeReadSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", usageError{fmt.Sprintf("read password: %v", err)}
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

// imageFlags are the flags of vm provision and reinstall that say what the
// root disk gets: the template, the root password and the SSH keys.
type imageFlags struct {
	template       string
	pwFile         string
	keys, keyFiles []string
}

func (cf *imageFlags) add(c *cobra.Command, pwUsage string) {
	c.Flags().StringVar(&cf.template, "template", "", "template name (required)")
	c.Flags().StringVar(&cf.pwFile, "root-password-file", "", pwUsage)
	c.Flags().StringArrayVar(&cf.keys, "ssh-key", nil, "authorized SSH public key (repeatable)")
	c.Flags().StringArrayVar(&cf.keyFiles, "ssh-key-file", nil, "file of authorized SSH public keys (repeatable)")
}

// read returns the template, the root password and the SSH keys the flags
// give, or the usage error of the first flag that is wrong.
func (cf *imageFlags) read() (template, pw string, keys []string, err error) {
	if pw, err = nodeReadSecret(cf.pwFile); err != nil {
		return "", "", nil, err
	}
	if keys, err = nodeReadKeys(cf.keys, cf.keyFiles); err != nil {
		return "", "", nil, err
	}
	if err = templateFlag(cf.template); err != nil {
		return "", "", nil, err
	}
	return cf.template, pw, keys, nil
}

func nodeReadKeys(keys []string, files []string) ([]string, error) {
	out := append([]string(nil), keys...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, usageError{fmt.Sprintf("read ssh key file: %v", err)}
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
	}
	return out, nil
}

// newNodeCmd returns `hostplanectl node …`, which talks to the local agent's socket.
func newNodeCmd() *cobra.Command {
	f := &nodeFlags{}
	cmd := &cobra.Command{Use: "node", Short: "Operate the local hypervisor agent (templates, VMs, stats)"}
	cmd.PersistentFlags().StringVar(&f.socket, "socket", api.NodeDefaultSocket, "agent local API socket")
	cmd.PersistentFlags().BoolVar(&f.json, "json", false, "print stable JSON instead of text")
	cmd.PersistentFlags().StringVar(&f.opID, "op-id", "", "operation id, to replay an operation idempotently (default: a fresh random id)")
	cmd.AddCommand(nodeTemplateCmd(f), nodeVMCmd(f), nodeStatsCmd(f), nodeOpCmd(f))
	cmd.AddCommand(nodeClusterCmds(f)...)
	return cmd
}

func nodeTemplateCmd(f *nodeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "template", Short: "Import, list and remove OS templates"}
	var req api.NodeTemplateImportRequest
	imp := nodeOperationCmd(f, "import NAME --image PATH --sha256 HEX", "Import a base image (qcow2) as a template; the checksum is verified", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		req.Name, req.OpID = args[0], f.id()
		return f.client().ImportTemplate(c.Context(), req)
	})
	imp.Flags().StringVar(&req.ImagePath, "image", "", "absolute path of the qcow2 base image (required)")
	imp.Flags().StringVar(&req.SHA256, "sha256", "", "expected SHA-256 of the image (required)")
	imp.Flags().StringVar(&req.OSFamily, "os-family", "linux", "OS family, e.g. debian, ubuntu, linux")
	imp.Flags().StringVar(&req.KernelPath, "kernel", "", "kernel for direct-boot templates")
	imp.Flags().StringVar(&req.InitrdPath, "initrd", "", "initrd for direct-boot templates")
	imp.Flags().StringVar(&req.Cmdline, "cmdline", "", "kernel command line for direct-boot templates")
	imp.Flags().BoolVar(&req.GuestAgent, "guest-agent", false, "the image runs the QEMU guest agent (enables password reset)")
	list := nodeCmd(f, "list", "List templates", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.NodeTemplate, error) {
		return f.client().Templates(c.Context())
	}, func(w io.Writer, ts []api.NodeTemplate) {
		table(w, "NAME\tOS\tSIZE\tFILE\tGUEST-AGENT\tSHA256", ts, func(tw io.Writer, t api.NodeTemplate) {
			fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%.16s…\n", t.Name, t.OSFamily, nodeBytes(t.SizeBytes), nodeBytes(t.FileBytes), t.GuestAgent, t.SHA256)
		})
	})
	rm := nodeOperationCmd(f, "remove NAME", "Remove a template no VM uses", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		return f.client().RemoveTemplate(c.Context(), args[0], f.id())
	})
	cmd.AddCommand(imp, list, rm)
	return cmd
}

func nodeVMCmd(f *nodeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Provision, power, snapshot, reinstall and terminate VMs"}

	var preq api.NodeProvisionRequest
	var pimage imageFlags
	prov := nodeOperationCmd(f, "provision NAME --template T", "Create and start a VM", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		var err error
		if preq.Template, preq.RootPassword, preq.SSHKeys, err = pimage.read(); err != nil {
			return nil, err
		}
		preq.Name, preq.OpID = args[0], f.id()
		return f.client().Provision(c.Context(), preq)
	})
	prov.Flags().Uint32Var(&preq.Plan.VCPUs, "vcpus", 1, "virtual CPUs")
	prov.Flags().Uint64Var(&preq.Plan.MemoryMiB, "memory-mib", 1024, "memory in MiB")
	prov.Flags().Uint64Var(&preq.Plan.DiskGiB, "disk-gib", 20, "root disk size in GiB")
	prov.Flags().StringVar(&preq.MAC, "mac", "", "MAC address (default: random 52:54:00:…)")
	prov.Flags().StringVar(&preq.Network, "network", "", "user, network:NAME or bridge:NAME (default: the agent's)")
	prov.Flags().StringVar(&preq.Hostname, "hostname", "", "guest hostname (default: the VM name)")
	prov.Flags().StringVar(&preq.IPv4, "ipv4", "", "static IPv4 in CIDR form (default: DHCP)")
	prov.Flags().StringVar(&preq.Gateway4, "gateway4", "", "IPv4 gateway for --ipv4")
	prov.Flags().StringVar(&preq.Bridge, "bridge", "", "a bridge of the agent's --bridge list: the NIC joins it with the clean-traffic filter on the guest's MAC and addresses (needs --ipv4 or --ipv6)")
	prov.Flags().StringVar(&preq.IPv6, "ipv6", "", "static IPv6 in CIDR form (2001:db8:0:5::1/64)")
	prov.Flags().StringVar(&preq.Gateway6, "gateway6", "", "IPv6 gateway for --ipv6 (in the prefix, elsewhere in the pool, or link-local)")
	prov.Flags().StringArrayVar(&preq.Resolvers, "resolver", nil, "DNS resolver for the guest's network-config (repeatable)")
	pimage.add(prov, "file holding the root password ('-' for stdin); never pass it in argv")

	list := nodeCmd(f, "list", "List VMs", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.NodeVM, error) {
		return f.client().VMs(c.Context())
	}, func(w io.Writer, vms []api.NodeVM) {
		table(w, "NAME\tSTATE\tTEMPLATE\tVCPUS\tMEMORY\tDISK\tMAC", vms, func(tw io.Writer, v api.NodeVM) {
			fprintf(tw, "%s\t%s\t%s\t%d\t%d MiB\t%d GiB\t%s\n", v.Name, v.State, v.Template, v.Plan.VCPUs, v.Plan.MemoryMiB, v.Plan.DiskGiB, v.MAC)
		})
	})
	show := nodeCmd(f, "show NAME", "Show a VM", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeVM, error) {
		return f.client().VM(c.Context(), args[0])
	}, func(w io.Writer, v *api.NodeVM) {
		fprintf(w, "name:        %s\nuuid:        %s\nstate:       %s\ntemplate:    %s\nplan:        %d vCPU, %d MiB, %d GiB\nmac:         %s\nnetwork:     %s\nhostname:    %s\ndomain type: %s\ndisk:        %s\nseed:        %s\nconsole log: %s\ninstalled:   %s\ncreated:     %s\n",
			v.Name, v.UUID, v.State, v.Template, v.Plan.VCPUs, v.Plan.MemoryMiB, v.Plan.DiskGiB, v.MAC, v.Network, v.Hostname,
			v.DomainType, v.DiskVolume, v.SeedVolume, v.ConsoleLog, v.InstalledAt.Format(time.RFC3339), v.CreatedAt.Format(time.RFC3339))
	})
	start := nodeOperationCmd(f, "start NAME", "Start a VM (already running is success)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		return f.client().Start(c.Context(), args[0], f.id())
	})
	stopCmd := func(use, short string, call func(*client.NodeClient, context.Context, string, api.NodeStopRequest) (*api.NodeOperation, error)) *cobra.Command {
		var grace time.Duration
		var force bool
		c := nodeOperationCmd(f, use+" NAME", short, cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
			if grace < 0 || grace%time.Second != 0 {
				return nil, usageError{"--grace must be whole seconds, e.g. 60s"}
			}
			return call(f.client(), c.Context(), args[0], api.NodeStopRequest{OpID: f.id(), GraceSeconds: int(grace / time.Second), Force: force})
		})
		c.Flags().DurationVar(&grace, "grace", 0, "wait this long for the ACPI shutdown before forcing off (default: the agent's, 60s)")
		c.Flags().BoolVar(&force, "force", false, "power off at once, without the ACPI request")
		return c
	}
	stop := stopCmd("stop", "Stop a VM: ACPI shutdown, forced off after the grace", (*client.NodeClient).Stop)
	reboot := stopCmd("reboot", "Reboot a VM: graceful stop (forced after the grace), then start", (*client.NodeClient).Reboot)

	var rreq api.NodeReinstallRequest
	var rimage imageFlags
	reinstall := nodeOperationCmd(f, "reinstall NAME --template T", "Replace the root disk with a fresh template copy (snapshots are removed)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		var err error
		if rreq.Template, rreq.RootPassword, rreq.SSHKeys, err = rimage.read(); err != nil {
			return nil, err
		}
		rreq.OpID = f.id()
		return f.client().Reinstall(c.Context(), args[0], rreq)
	})
	rimage.add(reinstall, "file holding the new root password ('-' for stdin)")

	terminate := nodeOperationCmd(f, "terminate NAME", "Destroy a VM and delete its disk and seed", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		return f.client().Terminate(c.Context(), args[0], f.id())
	})
	var user, pwf string
	pwreset := nodeOperationCmd(f, "password-reset NAME --password-file PATH", "Set a password through the QEMU guest agent", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		pw, err := nodeReadSecret(pwf)
		if err != nil {
			return nil, err
		}
		if pw == "" {
			return nil, usageError{"--password-file is required"}
		}
		return f.client().ResetPassword(c.Context(), args[0], api.NodePasswordResetRequest{OpID: f.id(), User: user, Password: pw})
	})
	pwreset.Flags().StringVar(&user, "user", "root", "guest user")
	pwreset.Flags().StringVar(&pwf, "password-file", "", "file holding the new password ('-' for stdin)")

	cmd.AddCommand(prov, list, show, start, stop, reboot, nodeSnapshotCmd(f), reinstall, terminate, pwreset)
	return cmd
}

func nodeSnapshotCmd(f *nodeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Create, list, delete and revert VM snapshots"}
	var desc string
	create := nodeOperationCmd(f, "create VM SNAPSHOT", "Snapshot a VM (running: with memory)", cobra.ExactArgs(2), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		return f.client().CreateSnapshot(c.Context(), args[0], api.NodeSnapshotCreateRequest{OpID: f.id(), Name: args[1], Description: desc})
	})
	create.Flags().StringVar(&desc, "description", "", "free text")
	list := nodeCmd(f, "list VM", "List a VM's snapshots", cobra.ExactArgs(1), func(c *cobra.Command, args []string) ([]api.NodeSnapshot, error) {
		return f.client().Snapshots(c.Context(), args[0])
	}, func(w io.Writer, snaps []api.NodeSnapshot) {
		// DESCRIPTION is the customer's (POST /v1/servers/:id/snapshots
		// takes bidi overrides and C1 controls, as the agent does):
		// printable, as a ticket's subject.
		table(w, "NAME\tSTATE\tCREATED\tVM-STATE\tCURRENT\tDESCRIPTION", snaps, func(tw io.Writer, s api.NodeSnapshot) {
			fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", s.Name, s.State, s.CreatedAt.Format(time.RFC3339), nodeBytes(s.VMStateBytes), s.Current, printable(s.Description, false))
		})
	})
	del := nodeOperationCmd(f, "delete VM SNAPSHOT", "Delete a snapshot", cobra.ExactArgs(2), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		return f.client().DeleteSnapshot(c.Context(), args[0], args[1], f.id())
	})
	revert := nodeOperationCmd(f, "revert VM SNAPSHOT", "Revert to a snapshot (the VM returns in the snapshot's power state)", cobra.ExactArgs(2), func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
		return f.client().RevertSnapshot(c.Context(), args[0], args[1], f.id())
	})
	cmd.AddCommand(create, list, del, revert)
	return cmd
}

func nodeStatsCmd(f *nodeFlags) *cobra.Command {
	return &cobra.Command{
		Use: "stats [VM]", Short: "Host stats and recent per-VM samples", Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			vm := ""
			if len(args) == 1 {
				vm = args[0]
			}
			st, err := f.client().Stats(c.Context(), vm)
			if err != nil {
				return nodeErr(err)
			}
			return f.emit(c, st, func(w io.Writer) {
				h := st.Host
				fprintf(w, "host: cpu %.1f%%, memory %s/%s, disk %s/%s, load %.2f %.2f %.2f\n",
					h.CPUPercent, nodeBytes(h.MemoryUsed), nodeBytes(h.MemoryTotal), nodeBytes(h.DiskUsed), nodeBytes(h.DiskTotal), h.Load1, h.Load5, h.Load15)
				names := make([]string, 0, len(st.VMs))
				for n := range st.VMs {
					names = append(names, n)
				}
				sort.Strings(names)
				table(w, "VM\tSTATE\tCPU%\tMEMORY\tDISK R/W B/s\tNET RX/TX B/s\tSAMPLES", names, func(tw io.Writer, n string) {
					ring := st.VMs[n]
					if len(ring) == 0 {
						return
					}
					s := ring[len(ring)-1]
					fprintf(tw, "%s\t%s\t%.1f\t%s\t%.0f/%.0f\t%.0f/%.0f\t%d\n", n, s.State, s.CPUPercent, nodeBytes(s.MemoryBytes),
						s.DiskReadBps, s.DiskWriteBps, s.NetRxBps, s.NetTxBps, len(ring))
				})
			})
		},
	}
}

func nodeOpCmd(f *nodeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "op", Short: "Inspect journaled operations"}
	cmd.AddCommand(&cobra.Command{
		Use: "show ID", Short: "Show an operation and its result", Args: cobra.ExactArgs(1),
		RunE: nodeRun(f, func(c *cobra.Command, args []string) (*api.NodeOperation, error) {
			return f.client().Operation(c.Context(), args[0])
		}, func(w io.Writer, op *api.NodeOperation) { printNodeOp(w, op) }),
	})
	return cmd
}

func nodeBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// templateFlag checks --template by the agent's rule for template names
// (validate.TemplateName) before anything is sent, naming the flag.
func templateFlag(t string) error {
	if t == "" {
		return usageError{"--template is required (a template imported on the node: hostplanectl node template list)"}
	}
	if err := validate.TemplateName(t); err != nil {
		return usageError{"--template: " + strings.TrimPrefix(err.Error(), validate.ErrInvalid.Error()+": ")}
	}
	return nil
}
