package hosting

// SetAfterSignal sets the function Reload calls between its signal and its
// wait: a test's event at that moment (a worker killed), not after a sleep.
func (n *Nginx) SetAfterSignal(f func(master int, old []int)) { n.afterSignal = f }
