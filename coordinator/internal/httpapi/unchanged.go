package httpapi

// unchanged decides, for a PATCH, whether it would leave its record as it
// is: load reads the record, same says whether the request changes nothing
// of it. A request that changes nothing answers the record as it is, with no
// Raft entry (its updated_at unmoved). The decision is made on a
// linearizable read (raftnode LinearizableRead: the leader's state with
// everything committed before the request arrived), so the answer is one a
// read at that moment would give; a write committed after it is ordered
// after the request, as if the request had committed first. A first read
// of the leader's own state spares a request that changes something the
// read barrier. It returns the record read and whether nothing changes; an
// error is load's, or a 503 when the barrier cannot be confirmed.
func unchanged[T any](a *API, rq *request, load func() (T, error), same func(T) bool) (T, bool, error) {
	v, err := load()
	if err != nil || !same(v) {
		return v, false, err
	}
	if ae := a.linearizableRead(rq.Context()); ae != nil {
		return v, false, errf(ae.StatusCode, ae.Code, "%s", ae.Message)
	}
	v, err = load()
	if err != nil || !same(v) {
		return v, false, err
	}
	return v, true, nil
}
