package bench

import "fmt"

// benchReads measures GET /v1/tickets on the leader twice, in the same run as
// the bare handler: linearizable (the default: each read waits for a
// leadership confirmation round shared with the reads arriving with it) and
// ?consistency=stale (served from the leader's state with no round).
func benchReads(o Options, pids []int, get func(url, key string) func(int, int) error, listURL, key string) (linear, stale Result) {
	linear = measured("hostplane GET /v1/tickets?limit=20 (leader, linearizable)", pids, o.Clients, o.Duration, get(listURL, key))
	fmt.Fprintln(o.Out, linear)
	stale = measured("hostplane GET /v1/tickets?limit=20 (leader, stale)", pids, o.Clients, o.Duration, get(listURL+"&consistency=stale", key))
	fmt.Fprintln(o.Out, stale)
	return linear, stale
}

func printReadRatios(o Options, bare, linear, stale Result) {
	fmt.Fprintf(o.Out, "reads:  hostplane linearizable / bare = %.2fx req/s, p99 %.2f ms vs %.2f ms   aim >= 0.5x\n",
		linear.PerSec()/bare.PerSec(), ms(linear.P99), ms(bare.P99))
	fmt.Fprintf(o.Out, "        hostplane stale / bare        = %.2fx req/s, p99 %.2f ms\n", stale.PerSec()/bare.PerSec(), ms(stale.P99))
	fmt.Fprintf(o.Out, "        linearizable / stale          = %.2fx req/s\n", linear.PerSec()/stale.PerSec())
	fmt.Fprintf(o.Out, "        server CPU per read: linearizable / bare = %.2fx, stale / bare = %.2fx\n", cpuRatio(linear, bare), cpuRatio(stale, bare))
}
