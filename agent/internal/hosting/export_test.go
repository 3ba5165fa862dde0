package hosting

// SetAfterSignal sets the function Reload calls between its signal and its
// wait: a test's event at that moment (a worker killed), not after a sleep.
func (n *Nginx) SetAfterSignal(f func(master int, old []int)) { n.afterSignal = f }

// SetAfterReloadSignal sets the function a PHP-FPM reload calls between its
// USR2 and its wait.
func (f *FPM) SetAfterReloadSignal(fn func()) { f.afterSignal = fn }
