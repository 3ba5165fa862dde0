package httpapi

// serverRoutes are the /v1/servers and /v1/actions operations.
func (a *API) serverRoutes() []Route {
	return nil
}
