// Package clustertest holds the webhook tests and the benchmark that need a real
// three-node coordinator cluster (testcluster): leader failover with deliveries
// in flight, and delivery throughput and latency.
package clustertest
