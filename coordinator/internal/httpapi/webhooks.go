package httpapi

// webhookRoutes are the /v1/webhooks operations.
func (a *API) webhookRoutes() []Route { return nil }
